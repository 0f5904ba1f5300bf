/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker tests — the ACP front door on a private bus: PromptContent
 * (content blocks reach the agent as they are; malformed ones are refused
 * naming the block), ListProfiles (the agent as it described itself), and
 * `agentctl acp` fed malformed input on its standard input (clear
 * JSON-RPC errors, bounded memory, the broker unaffected).
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "collector.h"
#include "daemon-fixture.h"
#include "error.h"

#define TURN_TIMEOUT_MS 20000

/* AddressSanitizer keeps freed memory in quarantine and adds its
 * shadow: under it a process's RSS says nothing about what it holds. */
#if defined(__SANITIZE_ADDRESS__)
#define AB_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define AB_UNDER_ASAN 1
#endif
#endif
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
                                  "pool:\n"
                                  "  transcript_bytes: 64KiB\n"
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

/* The title an agent gives its session (session_info_update) is kept,
 * cut to 256 bytes at a character boundary, and replaced by the next. */
static void
test_session_title (Fixture *fx, gconstpointer data)
{
  g_autoptr (GString) long_title = g_string_new ("title ");
  g_autoptr (GError) error = NULL;
  g_autofree char *title = NULL;
  g_autofree char *again = NULL;
  guint64 turn;

  turn = ab_prompt (fx->d.connection, fx->c, "cli:titled", "echo untitled");
  ab_wait_turn (fx->c, "cli:titled", turn, TURN_TIMEOUT_MS);
  title = ab_session_s (&fx->d, "cli:titled", "title");
  g_assert_cmpstr (title, ==, "");

  turn = ab_prompt (fx->d.connection, fx->c, "cli:titled",
                    "title Fixing the parser");
  ab_wait_turn (fx->c, "cli:titled", turn, TURN_TIMEOUT_MS);
  g_clear_pointer (&title, g_free);
  title = ab_session_s (&fx->d, "cli:titled", "title");
  g_assert_cmpstr (title, ==, "Fixing the parser");

  /* "a" then 200 two-byte characters: 256 bytes end inside one */
  g_string_append_c (long_title, 'a');
  for (int i = 0; i < 200; i++)
    g_string_append (long_title, "\xc3\xa9");
  turn = ab_prompt (fx->d.connection, fx->c, "cli:titled", long_title->str);
  ab_wait_turn (fx->c, "cli:titled", turn, TURN_TIMEOUT_MS);
  g_clear_pointer (&title, g_free);
  title = ab_session_s (&fx->d, "cli:titled", "title");
  g_assert_cmpuint (strlen (title), ==, 255);
  g_assert_true (g_utf8_validate (title, -1, NULL));
  g_assert_true (g_str_has_prefix (title, "a\xc3\xa9"));

  /* The record keeps it: a restart does too. */
  g_assert_cmpint (ab_daemon_fixture_stop (&fx->d, SIGTERM), ==, 0);
  ab_daemon_fixture_start (&fx->d, &error);
  g_assert_no_error (error);
  g_clear_pointer (&again, g_free);
  again = ab_session_s (&fx->d, "cli:titled", "title");
  g_assert_cmpstr (again, ==, title);
}

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
  /* found by fuzz/fuzz-content: json-glib quotes a bad string in its
   * message, here a lone surrogate, as invalid UTF-8; and a type name cut
   * to 64 bytes can end inside a character */
  { "[{\"type\":\"text\",\"text\":\"\\ud83d^\"x}]", "not JSON" },
  { "[{\"type\":\""
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "\xc3\xa9\"}]",
    "unknown type "
    "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'" },
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
      g_assert_true (g_utf8_validate (error->message, -1, NULL));
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
  g_autoptr (GError) error = NULL;
  g_autofree char *described = NULL;
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
  /* What it offered the session it opened: its modes and options. */
  g_assert_cmpstr (
      json_object_get_string_member (
          json_object_get_object_member (json_node_get_object (agent), "modes"),
          "currentModeId"),
      ==, "ask");
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (
                        json_node_get_object (agent), "configOptions")),
                    ==, 1);
  /* The other profile's agent has still not started. */
  g_clear_pointer (&other, g_variant_unref);
  other = profile_dict (fx, "other");
  g_assert_true (g_variant_lookup (other, "seen", "t", &seen));
  g_assert_cmpuint (seen, ==, 0);

  /* What the agent said of itself outlives the daemon. */
  g_assert_true (g_variant_lookup (demo, "agent", "&s", &s));
  described = g_strdup (s);
  g_assert_cmpint (ab_daemon_fixture_stop (&fx->d, SIGTERM), ==, 0);
  ab_daemon_fixture_start (&fx->d, &error);
  g_assert_no_error (error);
  g_clear_pointer (&demo, g_variant_unref);
  demo = profile_dict (fx, "demo");
  g_assert_true (g_variant_lookup (demo, "agent", "&s", &s));
  g_assert_cmpstr (s, ==, described);
  g_assert_true (g_variant_lookup (demo, "seen", "t", &seen));
  g_assert_cmpuint (seen, >, 0);
}

/* ---- CreateSession ------------------------------------------------------ */

static void
test_create_session (Fixture *fx, gconstpointer data)
{
  g_autoptr (GVariant) reply = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *agent = NULL;
  guint64 turn;
  AbTurn *t;

  ab_call_ok (&fx->d, "CreateSession",
              g_variant_new_parsed ("('cli:made', {'agent': <'other'>})"));
  g_assert_true (ab_state_is (&fx->d, "cli:made", "suspended"));
  g_assert_cmpuint (ab_session_u (&fx->d, "cli:made", "pid"), ==, 0);
  agent = ab_session_s (&fx->d, "cli:made", "agent");
  g_assert_cmpstr (agent, ==, "other");

  reply = ab_call_on (fx->d.connection, "CreateSession",
                      g_variant_new_parsed ("('cli:made', @a{sv} {})"), NULL,
                      &error);
  ab_assert_error_named (error, AB_ERROR_INVALID_ARGUMENT,
                         "org.agentbroker.Error.InvalidArgument");
  g_assert_nonnull (strstr (error->message, "already has a session"));
  g_clear_error (&error);
  reply = ab_call_on (fx->d.connection, "CreateSession",
                      g_variant_new_parsed ("('cli:x', {'agent': <'nope'>})"),
                      NULL, &error);
  ab_assert_error_named (error, AB_ERROR_INVALID_ARGUMENT,
                         "org.agentbroker.Error.InvalidArgument");
  g_assert_nonnull (strstr (error->message, "nope"));
  g_clear_error (&error);
  reply
      = ab_call_on (fx->d.connection, "CreateSession",
                    g_variant_new_parsed ("('../x', @a{sv} {})"), NULL, &error);
  ab_assert_error_named (error, AB_ERROR_INVALID_ARGUMENT,
                         "org.agentbroker.Error.InvalidArgument");
  g_clear_error (&error);

  /* Its first prompt starts the agent of its profile. */
  turn = ab_prompt (fx->d.connection, fx->c, "cli:made", "echo made");
  t = ab_wait_turn (fx->c, "cli:made", turn, TURN_TIMEOUT_MS);
  g_assert_cmpstr (t->text->str, ==, "echo made");
  g_assert_cmpuint (turn, ==, 1);
}

/* ---- SetSessionMode, SetSessionConfigOption ------------------------------ */

static void
test_session_options (Fixture *fx, gconstpointer data)
{
  g_autoptr (GDBusConnection) other = ab_user_connection (&fx->d, 60004);
  g_autoptr (GVariant) reply = NULL;
  g_autoptr (GError) error = NULL;
  const char *options;
  guint64 turn;

  /* No agent yet: nothing to set. */
  reply
      = ab_call_on (fx->d.connection, "SetSessionMode",
                    g_variant_new ("(ss)", "cli:modes", "code"), NULL, &error);
  ab_assert_error_named (error, AB_ERROR_NO_SUCH_SESSION,
                         "org.agentbroker.Error.NoSuchSession");
  g_clear_error (&error);

  ab_call_ok (&fx->d, "Watch", g_variant_new ("(s)", "cli:modes"));
  turn = ab_prompt (fx->d.connection, fx->c, "cli:modes", "echo hi");
  ab_wait_turn (fx->c, "cli:modes", turn, TURN_TIMEOUT_MS);

  /* The mode reaches the agent, whose current_mode_update streams. */
  ab_call_ok (&fx->d, "SetSessionMode",
              g_variant_new ("(ss)", "cli:modes", "code"));
  AB_WAIT_FOR (ab_turn_has_update_with (fx->c, "cli:modes", 0,
                                        "\"currentModeId\":\"code\""),
               TURN_TIMEOUT_MS);
  reply
      = ab_call_on (fx->d.connection, "SetSessionMode",
                    g_variant_new ("(ss)", "cli:modes", "bogus"), NULL, &error);
  ab_assert_error_named (error, AB_ERROR_AGENT_FAILED,
                         "org.agentbroker.Error.AgentFailed");
  g_assert_nonnull (strstr (error->message, "unknown mode"));
  g_clear_error (&error);

  reply = ab_call_on (fx->d.connection, "SetSessionConfigOption",
                      g_variant_new ("(ssv)", "cli:modes", "model",
                                     g_variant_new_string ("demo-large")),
                      "(s)", &error);
  g_assert_no_error (error);
  g_variant_get (reply, "(&s)", &options);
  g_assert_nonnull (strstr (options, "\"currentValue\":\"demo-large\""));
  g_clear_pointer (&reply, g_variant_unref);
  reply = ab_call_on (
      fx->d.connection, "SetSessionConfigOption",
      g_variant_new ("(ssv)", "cli:modes", "model", g_variant_new_uint32 (1)),
      "(s)", &error);
  ab_assert_error_named (error, AB_ERROR_INVALID_ARGUMENT,
                         "org.agentbroker.Error.InvalidArgument");
  g_clear_error (&error);

  /* Another user's session: refused. */
  reply = ab_call_on (other, "SetSessionMode",
                      g_variant_new ("(ss)", "cli:modes", "ask"), NULL, &error);
  ab_assert_error_named (error, AB_ERROR_ACCESS_DENIED,
                         "org.agentbroker.Error.AccessDenied");
}

/* ---- GetTranscript ------------------------------------------------------ */

static GVariant *
get_transcript (GDBusConnection *connection, const char *thread, GError **error)
{
  g_autoptr (GVariant) reply
      = ab_call_on (connection, "GetTranscript", g_variant_new ("(s)", thread),
                    "(as)", error);

  return reply != NULL ? g_variant_get_child_value (reply, 0) : NULL;
}

static void
test_transcript (Fixture *fx, gconstpointer data)
{
  g_autoptr (GDBusConnection) other = ab_user_connection (&fx->d, 60003);
  g_autoptr (GVariant) entries = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) first = NULL;
  g_autofree char *path = NULL, *hash = NULL, *name = NULL;
  const char *text;
  guint64 turn;
  AbTurn *t;
  GStatBuf st;

  turn = ab_prompt (fx->d.connection, fx->c, "cli:kept", "echo first");
  ab_wait_turn (fx->c, "cli:kept", turn, TURN_TIMEOUT_MS);
  entries = get_transcript (fx->d.connection, "cli:kept", &error);
  g_assert_no_error (error);
  /* The prompt as content blocks, then the answer as the agent sent
   * it (and, at any place, what it said outside the turn). */
  g_assert_cmpuint (g_variant_n_children (entries), >=, 2);
  g_variant_get_child (entries, 0, "&s", &text);
  if (strstr (text, "\"turn\":0") != NULL)
    g_variant_get_child (entries, 1, "&s", &text);
  g_assert_cmpstr (text, ==,
                   "{\"turn\":1,\"prompt\":[{\"type\":\"text\",\"text\":"
                   "\"echo first\"}]}");
  g_clear_pointer (&entries, g_variant_unref);

  /* Bounded: 1 MB of answers leave at most 64 KiB, the newest. */
  for (int i = 0; i < 10; i++)
    {
      turn = ab_prompt (fx->d.connection, fx->c, "cli:kept", "stream 100 1000");
      t = ab_wait_turn (fx->c, "cli:kept", turn, TURN_TIMEOUT_MS);
      g_assert_cmpstr (t->reason, ==, "end_turn");
    }
  hash = g_compute_checksum_for_string (G_CHECKSUM_SHA256, "cli:kept", -1);
  name = g_strconcat (hash, ".transcript", NULL);
  path = g_build_filename (fx->d.state_dir, "sessions", name, NULL);
  g_assert_cmpint (g_stat (path, &st), ==, 0);
  g_assert_cmpint (st.st_size, <=, 64 * 1024);
  g_assert_cmpint (st.st_size, >, 16 * 1024);
  entries = get_transcript (fx->d.connection, "cli:kept", &error);
  g_assert_no_error (error);
  g_variant_get_child (entries, 0, "&s", &text);
  first = json_from_string (text, &error);
  g_assert_no_error (error);
  g_assert_cmpint (
      json_object_get_int_member (json_node_get_object (first), "turn"), >, 1);

  /* Another user may not read it; nobody reads what does not exist. */
  g_clear_pointer (&entries, g_variant_unref);
  entries = get_transcript (other, "cli:kept", &error);
  g_assert_null (entries);
  ab_assert_error_named (error, AB_ERROR_ACCESS_DENIED,
                         "org.agentbroker.Error.AccessDenied");
  g_clear_error (&error);
  entries = get_transcript (fx->d.connection, "cli:none", &error);
  ab_assert_error_named (error, AB_ERROR_NO_SUCH_SESSION,
                         "org.agentbroker.Error.NoSuchSession");
  g_clear_error (&error);

  /* Removed with the session. */
  ab_call_ok (&fx->d, "RemoveSession", g_variant_new ("(s)", "cli:kept"));
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
}

/* ---- agentctl acp ---------------------------------------------------------
 */

/* agentctl --user acp, its standard input and output as pipes. */
typedef struct
{
  GSubprocess *proc;
  GOutputStream *in;
  GDataInputStream *out;
  GDataInputStream *err;
} FrontProc;

static void
front_proc_free (FrontProc *p)
{
  g_autoptr (GError) error = NULL;

  g_output_stream_close (p->in, NULL, NULL);
  /* The client is gone: agentctl acp exits, and successfully. */
  g_assert_true (ab_subprocess_wait_bounded (p->proc));
  g_assert_true (g_subprocess_get_if_exited (p->proc));
  g_assert_cmpint (g_subprocess_get_exit_status (p->proc), ==, 0);
  g_object_unref (p->out);
  g_object_unref (p->err);
  g_object_unref (p->proc);
  g_free (p);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (FrontProc, front_proc_free)

/* Starts agentctl acp; with @uid not 0 the daemon takes it for that
 * ordinary user (the test caller map), before it makes its first call. */
static FrontProc *
front_proc_new (Fixture *fx, uid_t uid)
{
  g_autofree char *agentctl = ab_test_program ("agentctl");
  g_autoptr (GSubprocessLauncher) launcher = g_subprocess_launcher_new (
      G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE
      | G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_autoptr (GError) error = NULL;
  FrontProc *p = g_new0 (FrontProc, 1);

  g_subprocess_launcher_setenv (launcher, "G_MESSAGES_DEBUG", "agentbroker",
                                TRUE);
  p->proc = g_subprocess_launcher_spawn (launcher, &error, agentctl, "--user",
                                         "acp", NULL);
  g_assert_no_error (error);
  p->in = g_subprocess_get_stdin_pipe (p->proc);
  p->out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (p->proc));
  p->err = g_data_input_stream_new (g_subprocess_get_stderr_pipe (p->proc));
  if (uid != 0)
    {
      const char *prefix = "connected to the broker as ";
      g_autofree char *line = NULL;
      g_autofree char *entry = NULL;
      const char *name;
      FILE *map;

      /* agentctl says who it is on the bus, at debug level. */
      do
        {
          g_free (line);
          line = g_data_input_stream_read_line (p->err, NULL, NULL, &error);
          g_assert_no_error (error);
          g_assert_nonnull (line);
        }
      while (strstr (line, prefix) == NULL);
      name = strstr (line, prefix) + strlen (prefix);
      entry = g_strdup_printf ("%s %u user\n", name, (guint)uid);
      map = fopen (fx->d.caller_map, "a");
      g_assert_nonnull (map);
      g_assert_cmpint (fputs (entry, map), >=, 0);
      g_assert_cmpint (fclose (map), ==, 0);
    }
  return p;
}

static void
front_send (FrontProc *p, const char *line)
{
  g_autoptr (GError) error = NULL;

  g_output_stream_write_all (p->in, line, strlen (line), NULL, NULL, &error);
  g_assert_no_error (error);
  g_output_stream_write_all (p->in, "\n", 1, NULL, NULL, &error);
  g_assert_no_error (error);
}

/* The next message agentctl acp writes. */
static JsonObject *
front_receive (FrontProc *p)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *line
      = g_data_input_stream_read_line (p->out, NULL, NULL, &error);
  g_autoptr (JsonNode) node = NULL;

  g_assert_no_error (error);
  g_assert_nonnull (line);
  g_test_message ("agentctl acp: %.300s", line);
  node = json_from_string (line, &error);
  g_assert_no_error (error);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (node));
  g_assert_cmpstr (
      json_object_get_string_member (json_node_get_object (node), "jsonrpc"),
      ==, "2.0");
  return json_object_ref (json_node_get_object (node));
}

/* The answer to the request @id, skipping notifications. */
static JsonObject *
front_answer (FrontProc *p, gint64 id)
{
  for (;;)
    {
      g_autoptr (JsonObject) message = front_receive (p);

      if (json_object_has_member (message, "method"))
        continue;
      g_assert_cmpint (json_object_get_int_member (message, "id"), ==, id);
      return g_steal_pointer (&message);
    }
}

/* Sends @line (a request with @id) and asserts that it fails with
 * @code and a message containing @part. */
static void
front_expect_error (FrontProc *p, const char *line, gint64 id, int code,
                    const char *part)
{
  g_autoptr (JsonObject) answer = NULL;
  JsonObject *error;

  front_send (p, line);
  answer = front_answer (p, id);
  g_assert_false (json_object_has_member (answer, "result"));
  error = json_object_get_object_member (answer, "error");
  g_assert_cmpint (json_object_get_int_member (error, "code"), ==, code);
  g_assert_nonnull (
      strstr (json_object_get_string_member (error, "message"), part));
}

/* An error about a message that has no usable id. */
static void
front_expect_anonymous_error (FrontProc *p, int code, const char *part)
{
  g_autoptr (JsonObject) answer = front_receive (p);
  JsonObject *error = json_object_get_object_member (answer, "error");

  g_assert_true (JSON_NODE_HOLDS_NULL (json_object_get_member (answer, "id")));
  g_assert_cmpint (json_object_get_int_member (error, "code"), ==, code);
  g_assert_nonnull (
      strstr (json_object_get_string_member (error, "message"), part));
}

static void
front_initialize (FrontProc *p)
{
  g_autoptr (JsonObject) answer = NULL;

  front_send (p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\","
                 "\"params\":{\"protocolVersion\":1}}");
  answer = front_answer (p, 1);
  g_assert_cmpint (
      json_object_get_int_member (
          json_object_get_object_member (answer, "result"), "protocolVersion"),
      ==, 1);
}

/* The session/new answer's sessionId (free it). */
static char *
front_new_session (FrontProc *p, gint64 id)
{
  g_autofree char *line = g_strdup_printf (
      "{\"jsonrpc\":\"2.0\",\"id\":%" G_GINT64_FORMAT ",\"method\":"
      "\"session/new\",\"params\":{\"cwd\":\"/\",\"mcpServers\":[]}}",
      id);
  g_autoptr (JsonObject) answer = NULL;

  front_send (p, line);
  answer = front_answer (p, id);
  return g_strdup (json_object_get_string_member (
      json_object_get_object_member (answer, "result"), "sessionId"));
}

/* The peak resident memory of @proc, in bytes. */
static guint64
peak_rss (GSubprocess *proc)
{
  g_autofree char *path
      = g_strdup_printf ("/proc/%s/status", g_subprocess_get_identifier (proc));
  g_autofree char *status = NULL;
  const char *line;

  g_assert_true (g_file_get_contents (path, &status, NULL, NULL));
  line = strstr (status, "VmHWM:");
  g_assert_nonnull (line);
  return g_ascii_strtoull (line + strlen ("VmHWM:"), NULL, 10) * 1024;
}

static void
test_malformed_input (Fixture *fx, gconstpointer data)
{
  g_autoptr (FrontProc) p = front_proc_new (fx, 0);
  g_autofree char *junk = g_malloc (1024 * 1024);
  g_autoptr (GString) deep = g_string_new (NULL);
  g_autoptr (GVariant) reply = NULL;
  g_autoptr (GError) error = NULL;
  guint64 peak;

  front_send (p, "garbage");
  front_expect_anonymous_error (p, -32700, "Parse error");
  front_send (p, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"}]");
  front_expect_anonymous_error (p, -32600, "must be a JSON object");
  front_expect_error (
      p,
      "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"session/new\","
      "\"params\":{\"cwd\":\"/\"}}",
      7, -32600, "initialize must come first");
  front_expect_error (p, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"nope\"}",
                      8, -32601, "Method not found: nope");
  front_expect_error (p, "{\"jsonrpc\":\"1.0\",\"id\":9,\"method\":\"x\"}", 9,
                      -32600, "jsonrpc must be \"2.0\"");
  front_send (p, "{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"x\"}");
  front_expect_anonymous_error (p, -32600, "id must be");
  for (int i = 0; i < 100000; i++)
    g_string_append_c (deep, '[');
  front_send (p, deep->str);
  front_expect_anonymous_error (p, -32700, "deeper");

  /* A 100 MB line: discarded as it goes, an error, and reading goes on. */
  memset (junk, 'x', 1024 * 1024);
  for (int i = 0; i < 100; i++)
    {
      g_output_stream_write_all (p->in, junk, 1024 * 1024, NULL, NULL, &error);
      g_assert_no_error (error);
    }
  front_send (p, "");
  front_expect_anonymous_error (p, -32600, "a line longer than 8388608 bytes");
  peak = peak_rss (p->proc);
  g_test_message ("agentctl acp: peak RSS %" G_GUINT64_FORMAT " bytes", peak);
#ifdef AB_UNDER_ASAN
  g_test_message ("built with AddressSanitizer: the RSS bound is checked "
                  "by the plain build only");
#else
  g_assert_cmpuint (peak, <, 64 * 1024 * 1024);
#endif

  /* Still speaking ACP. */
  front_initialize (p);
  front_expect_error (
      p,
      "{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"initialize\","
      "\"params\":{\"protocolVersion\":1}}",
      10, -32600, "already");
  front_expect_error (
      p,
      "{\"jsonrpc\":\"2.0\",\"id\":11,\"method\":\"session/prompt\","
      "\"params\":{\"sessionId\":\"acp:1:none\",\"prompt\":[]}}",
      11, -32002, "not open");
  front_expect_error (
      p,
      "{\"jsonrpc\":\"2.0\",\"id\":12,\"method\":\"session/new\","
      "\"params\":{\"cwd\":\"here\",\"mcpServers\":[]}}",
      12, -32602, "absolute");
  front_expect_error (
      p,
      "{\"jsonrpc\":\"2.0\",\"id\":13,\"method\":\"session/new\","
      "\"params\":{\"cwd\":\"/\",\"mcpServers\":[{\"name\":\"x\","
      "\"command\":\"/bin/x\",\"args\":[],\"env\":[]}]}}",
      13, -32602, "MCP servers");
  front_expect_error (
      p,
      "{\"jsonrpc\":\"2.0\",\"id\":14,\"method\":\"session/resume\","
      "\"params\":{\"sessionId\":\"../x\",\"cwd\":\"/\"}}",
      14, -32602, "thread id");
  /* Notifications get no answer, malformed or not: the next message is
   * the answer to the next request. */
  front_send (p, "{\"jsonrpc\":\"2.0\",\"method\":\"session/cancel\","
                 "\"params\":{\"sessionId\":\"acp:1:none\"}}");
  front_send (p, "{\"jsonrpc\":\"2.0\",\"method\":\"nope\"}");
  front_expect_error (p, "{\"jsonrpc\":\"2.0\",\"id\":15,\"method\":\"nope\"}",
                      15, -32601, "nope");

  /* The broker is unaffected. */
  reply = ab_call_on (fx->d.connection, "ListProfiles", NULL, "(a(sa{sv}))",
                      &error);
  g_assert_no_error (error);
}

static void
test_two_users (Fixture *fx, gconstpointer data)
{
  g_autoptr (FrontProc) alice = front_proc_new (fx, 60001);
  g_autoptr (FrontProc) bob = front_proc_new (fx, 60002);
  g_autofree char *session = NULL, *line = NULL, *bobs = NULL;
  g_autoptr (JsonObject) answer = NULL;
  JsonArray *sessions;

  front_initialize (alice);
  front_initialize (bob);
  session = front_new_session (alice, 2);
  /* The session exists in the broker at once, Alice's, not yet run. */
  g_assert_cmpuint (ab_session_u (&fx->d, session, "owner"), ==, 60001);
  g_assert_true (ab_state_is (&fx->d, session, "suspended"));
  line = g_strdup_printf ("{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":"
                          "\"session/prompt\",\"params\":{\"sessionId\":\"%s\","
                          "\"prompt\":[{\"type\":\"text\",\"text\":\"echo "
                          "mine\"}]}}",
                          session);
  front_send (alice, line);
  answer = front_answer (alice, 3);
  g_assert_cmpstr (
      json_object_get_string_member (
          json_object_get_object_member (answer, "result"), "stopReason"),
      ==, "end_turn");
  g_assert_cmpuint (ab_session_u (&fx->d, session, "owner"), ==, 60001);

  /* Bob can neither resume, nor list, nor delete it. */
  g_free (line);
  line = g_strdup_printf ("{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":"
                          "\"session/resume\",\"params\":{\"sessionId\":"
                          "\"%s\",\"cwd\":\"/\"}}",
                          session);
  front_expect_error (bob, line, 4, -32603, "belongs to uid 60001");
  g_free (line);
  line = g_strdup_printf ("{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":"
                          "\"session/delete\",\"params\":{\"sessionId\":"
                          "\"%s\"}}",
                          session);
  front_expect_error (bob, line, 5, -32603, "belongs to uid 60001");
  g_free (line);
  line = g_strdup_printf ("{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":"
                          "\"session/load\",\"params\":{\"sessionId\":"
                          "\"%s\",\"cwd\":\"/\",\"mcpServers\":[]}}",
                          session);
  front_expect_error (bob, line, 6, -32603, "belongs to uid 60001");
  bobs = front_new_session (bob, 7);
  g_clear_pointer (&answer, json_object_unref);
  front_send (bob, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"session/list\","
                   "\"params\":{}}");
  answer = front_answer (bob, 8);
  sessions = json_object_get_array_member (
      json_object_get_object_member (answer, "result"), "sessions");
  /* His own only. */
  g_assert_cmpuint (json_array_get_length (sessions), ==, 1);
  g_assert_cmpstr (
      json_object_get_string_member (
          json_array_get_object_element (sessions, 0), "sessionId"),
      ==, bobs);

  /* Alice lists it, and the session is still there. */
  g_clear_pointer (&answer, json_object_unref);
  front_send (alice, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":"
                     "\"session/list\",\"params\":{}}");
  answer = front_answer (alice, 9);
  sessions = json_object_get_array_member (
      json_object_get_object_member (answer, "result"), "sessions");
  g_assert_cmpuint (json_array_get_length (sessions), ==, 1);
  g_assert_cmpstr (
      json_object_get_string_member (
          json_array_get_object_element (sessions, 0), "sessionId"),
      ==, session);
  g_assert_cmpuint (ab_session_u (&fx->d, session, "turns"), ==, 1);
}

/* Sends session/prompt @text as request @id on @session and returns the
 * answer's stop reason; *@said is the agent's text that came before. */
static char *
front_prompt (FrontProc *p, gint64 id, const char *session, const char *text,
              char **said)
{
  g_autofree char *line = g_strdup_printf (
      "{\"jsonrpc\":\"2.0\",\"id\":%" G_GINT64_FORMAT ",\"method\":"
      "\"session/prompt\",\"params\":{\"sessionId\":\"%s\",\"prompt\":"
      "[{\"type\":\"text\",\"text\":\"%s\"}]}}",
      id, session, text);
  g_autoptr (GString) agent = g_string_new (NULL);

  front_send (p, line);
  for (;;)
    {
      g_autoptr (JsonObject) message = front_receive (p);
      JsonObject *update;

      if (!json_object_has_member (message, "method"))
        {
          g_assert_cmpint (json_object_get_int_member (message, "id"), ==, id);
          g_assert_true (json_object_has_member (message, "result"));
          if (said != NULL)
            *said = g_strdup (agent->str);
          return g_strdup (json_object_get_string_member (
              json_object_get_object_member (message, "result"), "stopReason"));
        }
      g_assert_cmpstr (json_object_get_string_member (message, "method"), ==,
                       "session/update");
      update = json_object_get_object_member (
          json_object_get_object_member (message, "params"), "update");
      if (g_strcmp0 (json_object_get_string_member (update, "sessionUpdate"),
                     "agent_message_chunk")
          == 0)
        g_string_append (
            agent,
            json_object_get_string_member (
                json_object_get_object_member (update, "content"), "text"));
    }
}

/* The broker's refusals reach the client as errors with its message
 * and the D-Bus error's name. */
static void
test_broker_errors (Fixture *fx, gconstpointer data)
{
  g_autoptr (FrontProc) p = front_proc_new (fx, 0);
  g_autofree char *session = NULL, *line = NULL;
  g_autoptr (JsonObject) answer = NULL;
  g_autoptr (GVariant) drained = NULL;
  g_autoptr (GError) error = NULL;
  JsonObject *failure;

  front_initialize (p);
  session = front_new_session (p, 2);
  drained = ab_call_on (fx->d.connection, "Drain", g_variant_new ("(u)", 0),
                        "(uu)", &error);
  g_assert_no_error (error);
  line = g_strdup_printf (
      "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"session/prompt\","
      "\"params\":{\"sessionId\":\"%s\",\"prompt\":[{\"type\":\"text\","
      "\"text\":\"echo refused\"}]}}",
      session);
  front_send (p, line);
  answer = front_answer (p, 3);
  failure = json_object_get_object_member (answer, "error");
  g_assert_cmpint (json_object_get_int_member (failure, "code"), ==, -32603);
  g_assert_nonnull (
      strstr (json_object_get_string_member (failure, "message"), "drained"));
  g_assert_cmpstr (
      json_object_get_string_member (
          json_object_get_object_member (failure, "data"), "dbusError"),
      ==, "org.agentbroker.Error.Draining");
  ab_call_ok (&fx->d, "Resume", NULL);

  /* An invalid prompt is the broker's InvalidArgument: -32602. */
  g_free (line);
  line = g_strdup_printf (
      "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"session/prompt\","
      "\"params\":{\"sessionId\":\"%s\",\"prompt\":[{\"type\":\"video\"}]}}",
      session);
  front_expect_error (p, line, 4, -32602, "unknown type 'video'");
}

/* A session closed while its prompt waits for the broker, and opened
 * again at once: the prompt is answered once, "cancelled", and the
 * session goes on. */
static void
test_close_while_prompting (Fixture *fx, gconstpointer data)
{
  g_autoptr (FrontProc) p = front_proc_new (fx, 0);
  g_autofree char *session = NULL, *lines = NULL, *reason = NULL;
  g_autofree char *said = NULL;
  g_autoptr (JsonObject) answer = NULL;

  front_initialize (p);
  session = front_new_session (p, 2);
  /* One write: the agent is not even started when the close comes. */
  lines = g_strdup_printf (
      "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"session/prompt\","
      "\"params\":{\"sessionId\":\"%s\",\"prompt\":[{\"type\":\"text\","
      "\"text\":\"echo early\"}]}}\n"
      "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"session/close\","
      "\"params\":{\"sessionId\":\"%s\"}}\n"
      "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"session/resume\","
      "\"params\":{\"sessionId\":\"%s\",\"cwd\":\"/\"}}",
      session, session, session);
  front_send (p, lines);
  answer = front_answer (p, 3);
  g_assert_cmpstr (
      json_object_get_string_member (
          json_object_get_object_member (answer, "result"), "stopReason"),
      ==, "cancelled");
  g_clear_pointer (&answer, json_object_unref);
  answer = front_answer (p, 4);
  g_assert_true (json_object_has_member (answer, "result"));
  g_clear_pointer (&answer, json_object_unref);
  answer = front_answer (p, 5);
  g_assert_true (json_object_has_member (answer, "result"));

  /* No second answer to 3 (the next answer is 6's); the session goes
   * on, the early turn's updates relayed if it ran after all. */
  reason = front_prompt (p, 6, session, "echo later", &said);
  g_assert_cmpstr (reason, ==, "end_turn");
  g_assert_true (g_str_has_suffix (said, "echo later"));
}

/* The broker restarts and reloads under a running agentctl acp: the
 * turn the restart cut off ends "cancelled", and the same connection
 * goes on in the same session. */
static void
test_broker_restart (Fixture *fx, gconstpointer data)
{
  g_autoptr (FrontProc) p = front_proc_new (fx, 0);
  g_autofree char *session = NULL, *reason = NULL, *said = NULL;
  g_autofree char *line = NULL;
  g_autoptr (JsonObject) first = NULL, answer = NULL;
  g_autoptr (GError) error = NULL;

  front_initialize (p);
  session = front_new_session (p, 2);
  reason = front_prompt (p, 3, session, "echo one", &said);
  g_assert_cmpstr (reason, ==, "end_turn");
  g_assert_cmpstr (said, ==, "echo one");
  g_clear_pointer (&reason, g_free);
  g_clear_pointer (&said, g_free);

  /* A turn running when the broker stops: once its first chunk is
   * there, the broker stops (its drain cuts the turn off) and starts
   * again. */
  line = g_strdup_printf (
      "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"session/prompt\","
      "\"params\":{\"sessionId\":\"%s\",\"prompt\":[{\"type\":\"text\","
      "\"text\":\"sleep 30\"}]}}",
      session);
  front_send (p, line);
  first = front_receive (p);
  g_assert_cmpstr (json_object_get_string_member (first, "method"), ==,
                   "session/update");
  g_assert_cmpint (ab_daemon_fixture_stop (&fx->d, SIGTERM), ==, 0);
  ab_daemon_fixture_start (&fx->d, &error);
  g_assert_no_error (error);
  answer = front_answer (p, 4);
  g_assert_cmpstr (
      json_object_get_string_member (
          json_object_get_object_member (answer, "result"), "stopReason"),
      ==, "cancelled");

  /* A reload changes nothing for it either. */
  ab_call_ok (&fx->d, "Reload", NULL);
  reason = front_prompt (p, 5, session, "echo two", &said);
  g_assert_cmpstr (reason, ==, "end_turn");
  g_assert_cmpstr (said, ==, "echo two");
  g_assert_cmpuint (ab_session_u (&fx->d, session, "turns"), ==, 3);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(name, func, data)                                                  \
  g_test_add ("/acp-front/" name, Fixture, data, fixture_up, func, fixture_down)
  ADD ("session-title", test_session_title, NULL);
  ADD ("prompt-content/blocks", test_content_blocks, NULL);
  ADD ("prompt-content/refused", test_content_refused, NULL);
  ADD ("list-profiles", test_list_profiles, NULL);
  ADD ("transcript", test_transcript, NULL);
  ADD ("create-session", test_create_session, NULL);
  ADD ("session-options", test_session_options, NULL);
  ADD ("agentctl-acp/malformed-input", test_malformed_input, NULL);
  ADD ("agentctl-acp/two-users", test_two_users, NULL);
  ADD ("agentctl-acp/broker-restart", test_broker_restart, NULL);
  ADD ("agentctl-acp/broker-errors", test_broker_errors, NULL);
  ADD ("agentctl-acp/close-while-prompting", test_close_while_prompting, NULL);
#undef ADD

  (void)ab_error_quark ();
  ab_test_bus_up ();
  return ab_test_run ();
}
