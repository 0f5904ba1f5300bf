/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — the service manager's file descriptor store */
#include "config.h"

#include <systemd/sd-daemon.h>

#include <gio/gio.h>

#include "fd-store.h"

gboolean
ab_fd_store_add (int fd, const char *name, gboolean watched, GError **error)
{
  g_autofree char *message = g_strdup_printf (
      "FDSTORE=1\n%sFDNAME=%s", watched ? "" : "FDPOLL=0\n", name);
  int r = sd_pid_notify_with_fds (0, 0, message, &fd, 1);

  if (r < 0)
    {
      g_set_error_literal (error, G_IO_ERROR, g_io_error_from_errno (-r),
                           g_strerror (-r));
      return FALSE;
    }
  return TRUE;
}

void
ab_fd_store_remove (const char *name)
{
  g_autofree char *message
      = g_strdup_printf ("FDSTOREREMOVE=1\nFDNAME=%s", name);
  int r = sd_notify (0, message);

  if (r < 0)
    g_debug ("FDSTOREREMOVE of %s: %s", name, g_strerror (-r));
}
