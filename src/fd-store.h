/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — the service manager's file descriptor store
 *
 * What the daemon keeps there outlives it across a restart or a crash
 * (FileDescriptorStoreMax= of its unit) and is handed to the next
 * instance under its name (sd_listen_fds_with_names).  Without
 * NOTIFY_SOCKET both calls do nothing.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Hands a duplicate of @fd to the store under @name (FDSTORE=1, FDNAME=);
 * @fd stays the caller's.  With @watched FALSE (FDPOLL=0) the manager does
 * not watch it, and so never drops it on POLLHUP or POLLERR.  FALSE with
 * @error (G_IO_ERROR, the errno's text as its message) when the manager
 * could not be told. */
gboolean ab_fd_store_add (int fd, const char *name, gboolean watched,
                          GError **error);

/* Takes what the store keeps under @name out of it (FDSTOREREMOVE=1,
 * FDNAME=); a name it does not hold is no error. */
void ab_fd_store_remove (const char *name);

G_END_DECLS
