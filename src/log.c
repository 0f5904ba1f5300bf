/* agentbroker — log output
 *
 * Under systemd, stderr is connected to the journal; writing structured
 * entries there keeps fields such as AGENTBROKER_THREAD= searchable. Run
 * by hand, the daemon prints plain lines.
 */
#include "config.h"

#include <stdio.h>

#include "log.h"

static gboolean log_verbose;
static gboolean log_to_journal;

static GLogWriterOutput
ab_log_writer (GLogLevelFlags level, const GLogField *fields, gsize n_fields,
               gpointer user_data)
{
  /* Debug and info lines only with --verbose or G_MESSAGES_DEBUG. */
  if ((level & (G_LOG_LEVEL_DEBUG | G_LOG_LEVEL_INFO)) != 0 && !log_verbose
      && g_log_writer_default_would_drop (level, G_LOG_DOMAIN))
    return G_LOG_WRITER_HANDLED;

  if (log_to_journal
      && g_log_writer_journald (level, fields, n_fields, user_data)
             == G_LOG_WRITER_HANDLED)
    return G_LOG_WRITER_HANDLED;

  return g_log_writer_standard_streams (level, fields, n_fields, user_data);
}

void
ab_log_init (gboolean verbose)
{
  log_verbose = verbose;
  log_to_journal = g_log_writer_is_journald (fileno (stderr));
  g_log_set_writer_func (ab_log_writer, NULL, NULL);
}
