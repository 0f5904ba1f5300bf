/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — readiness of many file descriptors through one epoll set
 *
 * GLib's main loop polls every source's descriptors on every iteration,
 * so with a few hundred agents the daemon spent most of each wake-up
 * walking descriptors that had nothing to say.  The agents' stdout and
 * stderr pipes and their pidfds are watched here instead: one epoll set,
 * which the default main context sees as a single descriptor, and which
 * reports only the descriptors that are ready.
 *
 * Callbacks run on the default main context at G_PRIORITY_DEFAULT, as a
 * GLib fd source's would.  Readiness is level-triggered: a callback that
 * leaves data unread is called again on the next iteration.  A hang-up or
 * error on the descriptor counts as readable, so the callback sees it as
 * end of file or a failed read().  A watch may be freed at any time,
 * from its own callback or another's, but must be freed before its
 * descriptor is closed.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _AbFdWatch AbFdWatch;

typedef void (*AbFdWatchFunc) (gpointer user_data);

/* Calls @func whenever @fd is readable, until ab_fd_watch_free().  @fd
 * stays the caller's.  Fails (G_IO_ERROR) when the epoll set cannot be
 * made or grown, e.g. at the descriptor or max_user_watches limit. */
AbFdWatch *ab_fd_watch_new (int fd, AbFdWatchFunc func, gpointer user_data,
                            GError **error);
void ab_fd_watch_free (AbFdWatch *watch);

/* For a descriptor owned with its watch: frees *@watch, then closes *@fd,
 * in the order the set needs; either may already be gone (NULL, -1).
 * Leaves both so. */
void ab_fd_watch_clear_and_close (AbFdWatch **watch, int *fd);

typedef struct _AbChildWatch AbChildWatch;

/* Calls @func once with the wait status when the child @pid exits, and
 * reaps it.  Through a pidfd in the epoll set; where the kernel has no
 * pidfd_open() (before Linux 5.3, or refused by a seccomp filter), through
 * a GLib child watch as before.  Freeing the watch before the exit leaves
 * the child unreaped. */
AbChildWatch *ab_child_watch_new (GPid pid, GChildWatchFunc func,
                                  gpointer user_data);
void ab_child_watch_free (AbChildWatch *watch);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (AbFdWatch, ab_fd_watch_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AbChildWatch, ab_child_watch_free)

G_END_DECLS
