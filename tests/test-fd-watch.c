/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — descriptors and children watched through one epoll set */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gio/gio.h>

#include "bounded-wait.h"
#include "fd-watch.h"

#define TEST_TIMEOUT_USEC (20 * G_USEC_PER_SEC)

typedef struct
{
  int fds[2];
  AbFdWatch *watch;
  guint calls;
  gboolean consume;    /* read what is there */
  gssize last_read;    /* what the last read() returned */
  AbFdWatch **to_free; /* freed by the callback, if set */
} Pipe;

static void
pipe_open (Pipe *p)
{
  memset (p, 0, sizeof *p);
  g_assert_no_errno (pipe2 (p->fds, O_CLOEXEC | O_NONBLOCK));
  p->consume = TRUE;
}

static void
pipe_close (Pipe *p)
{
  ab_fd_watch_clear_and_close (&p->watch, &p->fds[0]);
  if (p->fds[1] >= 0)
    close (p->fds[1]);
}

static void
on_readable (gpointer user_data)
{
  Pipe *p = user_data;
  char buf[64];

  p->calls++;
  if (p->consume)
    p->last_read = read (p->fds[0], buf, sizeof buf);
  if (p->to_free != NULL)
    g_clear_pointer (p->to_free, ab_fd_watch_free);
}

static void
pipe_watch (Pipe *p)
{
  g_autoptr (GError) error = NULL;

  p->watch = ab_fd_watch_new (p->fds[0], on_readable, p, &error);
  g_assert_no_error (error);
  g_assert_nonnull (p->watch);
}

static void
iterate_until (const guint *counter, guint at_least)
{
  AB_ITERATE_UNTIL (*counter >= at_least, TEST_TIMEOUT_USEC / 1000);
}

static void
drain_loop (void)
{
  while (g_main_context_iteration (NULL, FALSE))
    ;
}

static void
test_readable (void)
{
  Pipe p;

  pipe_open (&p);
  pipe_watch (&p);
  drain_loop ();
  g_assert_cmpuint (p.calls, ==, 0);

  g_assert_cmpint (write (p.fds[1], "x", 1), ==, 1);
  iterate_until (&p.calls, 1);
  g_assert_cmpint (p.last_read, ==, 1);
  drain_loop ();
  g_assert_cmpuint (p.calls, ==, 1);

  /* Level-triggered: what is left unread is reported again. */
  p.consume = FALSE;
  g_assert_cmpint (write (p.fds[1], "y", 1), ==, 1);
  iterate_until (&p.calls, 3);

  pipe_close (&p);
}

static void
test_hangup (void)
{
  Pipe p;

  pipe_open (&p);
  pipe_watch (&p);
  close (p.fds[1]);
  p.fds[1] = -1;
  iterate_until (&p.calls, 1);
  g_assert_cmpint (p.last_read, ==, 0);
  pipe_close (&p);
}

/* Freed from its own callback: never called again. */
static void
test_free_own (void)
{
  Pipe p;

  pipe_open (&p);
  pipe_watch (&p);
  p.consume = FALSE;
  p.to_free = &p.watch;
  g_assert_cmpint (write (p.fds[1], "x", 1), ==, 1);
  iterate_until (&p.calls, 1);
  g_assert_null (p.watch);
  for (int i = 0; i < 5; i++)
    g_main_context_iteration (NULL, FALSE);
  g_assert_cmpuint (p.calls, ==, 1);
  pipe_close (&p);
}

/* Two descriptors ready in the same batch, the first callback frees the
 * other's watch: the other is not called (nor is freed memory read, which
 * the sanitizer run would report). */
static void
test_free_other_in_batch (void)
{
  Pipe a, b;

  pipe_open (&a);
  pipe_open (&b);
  pipe_watch (&a);
  pipe_watch (&b);
  a.to_free = &b.watch;
  b.to_free = &a.watch;
  g_assert_cmpint (write (a.fds[1], "x", 1), ==, 1);
  g_assert_cmpint (write (b.fds[1], "x", 1), ==, 1);
  AB_ITERATE_UNTIL (a.calls + b.calls > 0, TEST_TIMEOUT_USEC / 1000);
  drain_loop ();
  g_assert_cmpuint (a.calls + b.calls, ==, 1);
  /* the one called freed the other */
  g_assert_true (a.calls == 1 ? b.watch == NULL && a.watch != NULL
                              : a.watch == NULL && b.watch != NULL);
  pipe_close (&a);
  pipe_close (&b);
}

static void
test_bad_descriptor (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (AbFdWatch) watch = NULL;
  int fds[2];

  g_assert_no_errno (pipe (fds));
  close (fds[0]);
  close (fds[1]);
  watch = ab_fd_watch_new (fds[0], on_readable, NULL, &error);
  g_assert_null (watch);
  g_assert_true (error->domain == G_IO_ERROR);
  g_assert_nonnull (strstr (error->message, "cannot watch descriptor"));
}

/* ---- children ----------------------------------------------------------- */

typedef struct
{
  guint calls;
  GPid pid;
  int status;
  AbChildWatch *watch;
} Child;

static void
on_child_exited (GPid pid, int status, gpointer user_data)
{
  Child *c = user_data;

  c->calls++;
  c->pid = pid;
  c->status = status;
  /* as the agent's owner does: freed from the callback */
  g_clear_pointer (&c->watch, ab_child_watch_free);
}

static GPid
fork_child (int exit_code)
{
  GPid pid = fork ();

  g_assert_cmpint (pid, >=, 0);
  if (pid == 0)
    {
      if (exit_code < 0)
        pause ();
      _exit (exit_code);
    }
  return pid;
}

/* The status arrives once, and the child is reaped. */
static void
check_child (int exit_code, int signo)
{
  Child c = { 0 };
  GPid pid = fork_child (signo != 0 ? -1 : exit_code);

  c.watch = ab_child_watch_new (pid, on_child_exited, &c);
  if (signo != 0)
    kill (pid, signo);
  iterate_until (&c.calls, 1);
  g_assert_cmpint (c.pid, ==, pid);
  if (signo != 0)
    {
      g_assert_true (WIFSIGNALED (c.status));
      g_assert_cmpint (WTERMSIG (c.status), ==, signo);
    }
  else
    {
      g_assert_true (WIFEXITED (c.status));
      g_assert_cmpint (WEXITSTATUS (c.status), ==, exit_code);
    }
  g_assert_cmpint (waitpid (pid, NULL, WNOHANG), ==, -1);
  g_assert_cmpint (errno, ==, ECHILD);
  drain_loop ();
  g_assert_cmpuint (c.calls, ==, 1);
}

static void
test_child_exit (void)
{
  int pidfd = pidfd_open (getpid (), 0);

  /* the pidfd path is the one under test here */
  g_assert_cmpint (pidfd, >=, 0);
  close (pidfd);
  check_child (3, 0);
  check_child (0, 0);
  check_child (0, SIGKILL);
}

/* Freed before the child exits: no call, and the child is left alone. */
static void
test_child_free_early (void)
{
  Child c = { 0 };
  GPid pid = fork_child (-1);
  int status;

  c.watch = ab_child_watch_new (pid, on_child_exited, &c);
  g_clear_pointer (&c.watch, ab_child_watch_free);
  kill (pid, SIGKILL);
  g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
  drain_loop ();
  g_assert_cmpuint (c.calls, ==, 0);
}

/* Where pidfd_open() is refused (an old kernel, a seccomp filter), the
 * GLib child watch takes over with the same result. */
static void
test_child_without_pidfd (void)
{
  struct sock_filter filter[] = {
    BPF_STMT (BPF_LD | BPF_W | BPF_ABS, offsetof (struct seccomp_data, nr)),
    BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K, __NR_pidfd_open, 0, 1),
    BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
    BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog program = { G_N_ELEMENTS (filter), filter };

  if (g_test_subprocess ())
    {
      g_assert_no_errno (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
      g_assert_no_errno (prctl (PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program));
      g_assert_cmpint (pidfd_open (getpid (), 0), ==, -1);
      g_assert_cmpint (errno, ==, ENOSYS);
      check_child (7, 0);
      check_child (0, SIGTERM);
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/fd-watch/readable", test_readable);
  g_test_add_func ("/fd-watch/hangup", test_hangup);
  g_test_add_func ("/fd-watch/free-own", test_free_own);
  g_test_add_func ("/fd-watch/free-other-in-batch", test_free_other_in_batch);
  g_test_add_func ("/fd-watch/bad-descriptor", test_bad_descriptor);
  g_test_add_func ("/fd-watch/child/exit", test_child_exit);
  g_test_add_func ("/fd-watch/child/free-early", test_child_free_early);
  g_test_add_func ("/fd-watch/child/without-pidfd", test_child_without_pidfd);

  return g_test_run ();
}
