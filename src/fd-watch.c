/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — readiness of many file descriptors through one epoll set */
#include "config.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gio/gio.h>

#include "fd-watch.h"

/* More ready descriptors than this wait for the next iteration, so the
 * other sources of the main loop get their turn in between. */
#define MAX_EVENTS_PER_DISPATCH 64

struct _AbFdWatch
{
  int fd;
  AbFdWatchFunc func;
  gpointer user_data;
  gboolean freed; /* kept in the graveyard until the dispatch is over */
};

/* One set for the process, on the default main context: made at the first
 * watch, kept until exit. */
static struct
{
  GSource *source;
  int epfd;
  gboolean dispatching;
  /* Watches freed while a batch of events is dispatched: a later event of
   * the same batch may still point at one. */
  GPtrArray *graveyard;
} set = { .epfd = -1 };

static gboolean
set_dispatch (GSource *source, GSourceFunc callback, gpointer user_data)
{
  struct epoll_event events[MAX_EVENTS_PER_DISPATCH];
  int n;

  do
    n = epoll_wait (set.epfd, events, G_N_ELEMENTS (events), 0);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    {
      g_warning ("cannot read the epoll set: %s", g_strerror (errno));
      return G_SOURCE_CONTINUE;
    }

  /* A source is never dispatched inside its own dispatch, so this is not
   * re-entered, even by a nested main loop in a callback. */
  set.dispatching = TRUE;
  for (int i = 0; i < n; i++)
    {
      AbFdWatch *watch = events[i].data.ptr;

      if (!watch->freed)
        watch->func (watch->user_data);
    }
  set.dispatching = FALSE;
  g_ptr_array_set_size (set.graveyard, 0);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs set_funcs = { .dispatch = set_dispatch };

static gboolean
ensure_set (GError **error)
{
  int saved;

  if (set.source != NULL)
    return TRUE;

  set.epfd = epoll_create1 (EPOLL_CLOEXEC);
  if (set.epfd < 0)
    {
      saved = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                   "cannot create an epoll set: %s", g_strerror (saved));
      return FALSE;
    }
  set.graveyard = g_ptr_array_new_with_free_func (g_free);
  set.source = g_source_new (&set_funcs, sizeof (GSource));
  g_source_set_static_name (set.source, "agentbroker fd watches");
  g_source_add_unix_fd (set.source, set.epfd, G_IO_IN);
  g_source_attach (set.source, NULL);
  return TRUE;
}

AbFdWatch *
ab_fd_watch_new (int fd, AbFdWatchFunc func, gpointer user_data, GError **error)
{
  struct epoll_event event = { .events = EPOLLIN };
  AbFdWatch *watch;
  int saved;

  g_return_val_if_fail (fd >= 0, NULL);
  g_return_val_if_fail (func != NULL, NULL);

  if (!ensure_set (error))
    return NULL;

  watch = g_new0 (AbFdWatch, 1);
  watch->fd = fd;
  watch->func = func;
  watch->user_data = user_data;
  event.data.ptr = watch;
  if (epoll_ctl (set.epfd, EPOLL_CTL_ADD, fd, &event) != 0)
    {
      saved = errno;
      g_free (watch);
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                   "cannot watch descriptor %d: %s", fd, g_strerror (saved));
      return NULL;
    }
  return watch;
}

void
ab_fd_watch_free (AbFdWatch *watch)
{
  if (watch == NULL)
    return;
  g_return_if_fail (!watch->freed);

  watch->freed = TRUE;
  /* Taken out of the set now rather than left to close(): a child being
   * spawned may hold a copy of the descriptor for a moment, and the set
   * would go on reporting it. */
  if (epoll_ctl (set.epfd, EPOLL_CTL_DEL, watch->fd, NULL) != 0)
    {
      /* The descriptor was closed first: the set may still report the
       * watch, so its memory must stay valid. */
      g_critical ("descriptor %d was closed before its watch was freed: %s",
                  watch->fd, g_strerror (errno));
      return;
    }
  if (set.dispatching)
    g_ptr_array_add (set.graveyard, watch);
  else
    g_free (watch);
}

void
ab_fd_watch_clear_and_close (AbFdWatch **watch, int *fd)
{
  g_clear_pointer (watch, ab_fd_watch_free);
  if (*fd >= 0)
    close (*fd);
  *fd = -1;
}

/* ---- child processes --------------------------------------------------- */

struct _AbChildWatch
{
  GPid pid;
  GChildWatchFunc func;
  gpointer user_data;
  int pidfd;         /* -1 when not (or no longer) watched through one */
  AbFdWatch *watch;  /* on the pidfd */
  GSource *fallback; /* GLib's child watch, without a pidfd */
};

static void
stop_watching (AbChildWatch *self)
{
  ab_fd_watch_clear_and_close (&self->watch, &self->pidfd);
  if (self->fallback != NULL)
    g_source_destroy (self->fallback);
  g_clear_pointer (&self->fallback, g_source_unref);
}

/* A pidfd turns readable when its process exits. */
static void
on_pidfd_readable (gpointer user_data)
{
  AbChildWatch *self = user_data;
  int status = 0;
  pid_t r;

  do
    r = waitpid (self->pid, &status, WNOHANG);
  while (r < 0 && errno == EINTR);
  if (r == 0)
    return;
  if (r < 0)
    {
      /* Only if something else reaped it: the exit status is lost. */
      g_warning ("cannot reap process %d: %s", (int)self->pid,
                 g_strerror (errno));
      status = 0;
    }

  /* @func may free the watch. */
  stop_watching (self);
  self->func (self->pid, status, self->user_data);
}

static void
on_fallback_exited (GPid pid, int status, gpointer user_data)
{
  AbChildWatch *self = user_data;

  g_clear_pointer (&self->fallback, g_source_unref);
  self->func (pid, status, self->user_data);
}

AbChildWatch *
ab_child_watch_new (GPid pid, GChildWatchFunc func, gpointer user_data)
{
  AbChildWatch *self;

  g_return_val_if_fail (pid > 0, NULL);
  g_return_val_if_fail (func != NULL, NULL);

  self = g_new0 (AbChildWatch, 1);
  self->pid = pid;
  self->func = func;
  self->user_data = user_data;
  self->pidfd = pidfd_open (pid, 0);
  if (self->pidfd >= 0)
    {
      self->watch
          = ab_fd_watch_new (self->pidfd, on_pidfd_readable, self, NULL);
      if (self->watch == NULL)
        ab_fd_watch_clear_and_close (&self->watch, &self->pidfd);
    }
  if (self->watch == NULL)
    {
      self->fallback = g_child_watch_source_new (pid);
      g_source_set_callback (self->fallback, G_SOURCE_FUNC (on_fallback_exited),
                             self, NULL);
      g_source_attach (self->fallback, NULL);
    }
  return self;
}

void
ab_child_watch_free (AbChildWatch *watch)
{
  if (watch == NULL)
    return;
  stop_watching (watch);
  g_free (watch);
}
