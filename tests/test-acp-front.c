/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker tests — the ACP front door on a private bus: PromptContent
 * (content blocks reach the agent as they are; malformed ones are refused
 * naming the block), ListProfiles (the agent as it described itself), and
 * `agentctl acp` fed malformed input on its standard input (clear
 * JSON-RPC errors, bounded memory, the broker unaffected).
 */
#include "config.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <json-glib/json-glib.h>

#include "collector.h"
#include "daemon-fixture.h"
#include "error.h"

#define TURN_TIMEOUT_MS 20000
#define TEST_ALARM_SECONDS 60

typedef struct
{
  AbDaemonFixture d;
  AbCollector *c;
} Fixture;

static void
fixture_up (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  ab_daemon_fixture_setup (&fx->d, NULL);
  fx->c = ab_collector_new (fx->d.connection);
  ab_daemon_fixture_watchdog (&fx->d, TEST_ALARM_SECONDS);
  ab_daemon_fixture_write_config (&fx->d,
                                  "default_agent: demo\n"
                                  "agents:\n"
                                  "  demo:\n"
                                  "    command: [agentbroker-demo-agent]\n"
                                  "  other:\n"
                                  "    command: [agentbroker-demo-agent]\n"
                                  "    permissions: ask\n"
                                  "timeouts:\n"
                                  "  drain: 2s\n"
                                  "  kill: 2s\n");
  ab_daemon_fixture_start (&fx->d, &error);
  g_assert_no_error (error);
}

static void
fixture_down (Fixture *fx, gconstpointer data)
{
  ab_collector_free (fx->c);
  ab_daemon_fixture_stop_checked (&fx->d);
  ab_daemon_fixture_teardown (&fx->d);
}

/* PromptContent(@thread, @content); the turn, or 0 with @error. */
static guint64
prompt_content (Fixture *fx, const char *thread, const char *content,
                GError **error)
{
  g_autoptr (GVariant) reply = ab_call_on (
      fx->d.connection, "PromptContent",
      g_variant_new ("(ssa{sv})", thread, content, NULL), "(t)", error);
  guint64 turn = 0;

  if (reply != NULL)
    g_variant_get (reply, "(t)", &turn);
  return turn;
}

/* ---- PromptContent ------------------------------------------------------ */

static void
test_content_blocks (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  guchar image[3000];
  g_autofree char *b64 = NULL, *sum = NULL, *content = NULL;
  g_autofree char *expect_image = NULL, *expect_resource = NULL;
  guint64 turn;
  AbTurn *t;

  for (gsize i = 0; i < sizeof image; i++)
    image[i] = (guchar)(i * 7 + 3);
  b64 = g_base64_encode (image, sizeof image);
  sum = g_compute_checksum_for_data (G_CHECKSUM_SHA256, image, sizeof image);
  content = g_strdup_printf (
      "[{\"type\":\"text\",\"text\":\"blocks\"},"
      "{\"type\":\"image\",\"mimeType\":\"image/png\",\"data\":\"%s\"},"
      "{\"type\":\"resource\",\"resource\":{\"uri\":\"file:///a.txt\","
      "\"text\":\"abc\"}},"
      "{\"type\":\"resource_link\",\"uri\":\"file:///b\",\"name\":\"b\"}]",
      b64);

  turn = prompt_content (fx, "cli:blocks", content, &error);
  g_assert_no_error (error);
  t = ab_wait_turn (fx->c, "cli:blocks", turn, TURN_TIMEOUT_MS);
  g_assert_cmpstr (t->reason, ==, "end_turn");
  expect_image = g_strdup_printf ("block 1: image image/png 3000 bytes "
                                  "sha256 %s\n",
                                  sum);
  expect_resource = g_strdup_printf (
      "block 2: resource file:///a.txt 3 bytes sha256 %s\n",
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  g_assert_cmpuint (t->chunks->len, ==, 4);
  g_assert_cmpstr (t->chunks->pdata[0], ==, "block 0: text blocks\n");
  g_assert_cmpstr (t->chunks->pdata[1], ==, expect_image);
  g_assert_cmpstr (t->chunks->pdata[2], ==, expect_resource);
  g_assert_cmpstr (t->chunks->pdata[3], ==,
                   "block 3: resource_link file:///b b\n");

  /* The text of the text blocks is what the session's record keeps; the
   * session goes on with plain Prompt() too. */
  turn = ab_prompt (fx->d.connection, fx->c, "cli:blocks", "echo plain");
  t = ab_wait_turn (fx->c, "cli:blocks", turn, TURN_TIMEOUT_MS);
  g_assert_cmpstr (t->text->str, ==, "echo plain");
}

typedef struct
{
  const char *content;
  const char *message; /* a part of the error's message */
} BadContent;

static const BadContent bad_contents[] = {
  { "not json", "not JSON" },
  { "{\"type\":\"text\",\"text\":\"x\"}", "JSON array" },
  { "[]", "0 blocks" },
  { "[1]", "block 0 is not an object" },
  { "[{\"text\":\"x\"}]", "block 0 is not an object with a string" },
  { "[{\"type\":\"video\",\"data\":\"x\"}]", "unknown type 'video'" },
  { "[{\"type\":\"text\"}]", "block 0 (text) needs a string \"text\"" },
  { "[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"image\",\"data\":\"x\"}]",
    "block 1 (image) needs a string \"mimeType\"" },
  { "[{\"type\":\"resource\",\"resource\":{\"uri\":\"x\"}}]",
    "block 0 (resource) needs an object" },
  { "[{\"type\":\"resource_link\",\"uri\":\"x\"}]",
    "block 0 (resource_link) needs a string \"name\"" },
};

static void
test_content_refused (Fixture *fx, gconstpointer data)
{
  g_autoptr (GString) many = g_string_new ("[");
  g_autoptr (GString) big = g_string_new ("[{\"type\":\"text\",\"text\":\"");
  g_autoptr (GVariant) list = NULL;

  for (gsize i = 0; i < G_N_ELEMENTS (bad_contents); i++)
    {
      g_autoptr (GError) error = NULL;

      g_assert_cmpuint (
          prompt_content (fx, "cli:bad", bad_contents[i].content, &error), ==,
          0);
      ab_assert_error_named (error, AB_ERROR_INVALID_ARGUMENT,
                             "org.agentbroker.Error.InvalidArgument");
      g_test_message ("%s: %s", bad_contents[i].content, error->message);
      g_assert_nonnull (strstr (error->message, bad_contents[i].message));
    }

  for (int i = 0; i < 257; i++)
    g_string_append (many, i > 0 ? ",{\"type\":\"text\",\"text\":\"x\"}"
                                 : "{\"type\":\"text\",\"text\":\"x\"}");
  g_string_append (many, "]");
  {
    g_autoptr (GError) error = NULL;

    g_assert_cmpuint (prompt_content (fx, "cli:bad", many->str, &error), ==, 0);
    g_assert_nonnull (strstr (error->message, "257 blocks"));
  }
  while (big->len <= 4 * 1024 * 1024)
    g_string_append (big, "0123456789abcdef0123456789abcdef");
  g_string_append (big, "\"}]");
  {
    g_autoptr (GError) error = NULL;

    g_assert_cmpuint (prompt_content (fx, "cli:bad", big->str, &error), ==, 0);
    ab_assert_error_named (error, AB_ERROR_INVALID_ARGUMENT,
                           "org.agentbroker.Error.InvalidArgument");
    g_assert_nonnull (strstr (error->message, "at most 4194304 bytes"));
  }

  /* Nothing was created by any of them. */
  list = ab_list_sessions (&fx->d);
  g_assert_cmpuint (g_variant_n_children (list), ==, 0);
}

/* ---- ListProfiles ------------------------------------------------------- */

/* The dictionary of @name in ListProfiles(), asserting it is listed. */
static GVariant *
profile_dict (Fixture *fx, const char *name)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = ab_call_on (fx->d.connection, "ListProfiles",
                                           NULL, "(a(sa{sv}))", &error);
  g_autoptr (GVariant) profiles = NULL;
  GVariantIter iter;
  const char *profile;
  GVariant *dict;

  g_assert_no_error (error);
  profiles = g_variant_get_child_value (reply, 0);
  g_variant_iter_init (&iter, profiles);
  while (g_variant_iter_next (&iter, "(&s@a{sv})", &profile, &dict))
    {
      if (g_str_equal (profile, name))
        return dict;
      g_variant_unref (dict);
    }
  g_assert_not_reached ();
}

static void
test_list_profiles (Fixture *fx, gconstpointer data)
{
  g_autoptr (GVariant) demo = profile_dict (fx, "demo");
  g_autoptr (GVariant) other = profile_dict (fx, "other");
  g_autoptr (JsonNode) agent = NULL;
  const char *s;
  gboolean b;
  guint64 seen;
  guint64 turn;
  JsonObject *caps;

  g_assert_true (g_variant_lookup (demo, "default", "b", &b));
  g_assert_true (b);
  g_assert_true (g_variant_lookup (other, "default", "b", &b));
  g_assert_false (b);
  g_assert_true (g_variant_lookup (demo, "permissions", "&s", &s));
  g_assert_cmpstr (s, ==, "deny");
  g_assert_true (g_variant_lookup (other, "permissions", "&s", &s));
  g_assert_cmpstr (s, ==, "ask");
  /* No agent has started yet. */
  g_assert_true (g_variant_lookup (demo, "agent", "&s", &s));
  g_assert_cmpstr (s, ==, "");
  g_assert_true (g_variant_lookup (demo, "seen", "t", &seen));
  g_assert_cmpuint (seen, ==, 0);

  turn = ab_prompt (fx->d.connection, fx->c, "cli:profiles", "echo hi");
  ab_wait_turn (fx->c, "cli:profiles", turn, TURN_TIMEOUT_MS);
  g_clear_pointer (&demo, g_variant_unref);
  demo = profile_dict (fx, "demo");
  g_assert_true (g_variant_lookup (demo, "seen", "t", &seen));
  g_assert_cmpuint (seen, >, 0);
  g_assert_true (g_variant_lookup (demo, "agent", "&s", &s));
  agent = json_from_string (s, NULL);
  g_assert_nonnull (agent);
  g_assert_cmpstr (json_object_get_string_member (
                       json_object_get_object_member (
                           json_node_get_object (agent), "agentInfo"),
                       "name"),
                   ==, "agentbroker-demo-agent");
  caps = json_object_get_object_member (json_node_get_object (agent),
                                        "agentCapabilities");
  g_assert_true (json_object_get_boolean_member (
      json_object_get_object_member (caps, "promptCapabilities"), "image"));
  /* The other profile's agent has still not started. */
  g_clear_pointer (&other, g_variant_unref);
  other = profile_dict (fx, "other");
  g_assert_true (g_variant_lookup (other, "seen", "t", &seen));
  g_assert_cmpuint (seen, ==, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(name, func, data)                                                  \
  g_test_add ("/acp-front/" name, Fixture, data, fixture_up, func, fixture_down)
  ADD ("prompt-content/blocks", test_content_blocks, NULL);
  ADD ("prompt-content/refused", test_content_refused, NULL);
  ADD ("list-profiles", test_list_profiles, NULL);
#undef ADD

  (void)ab_error_quark ();
  ab_test_bus_up ();
  return ab_test_run ();
}
