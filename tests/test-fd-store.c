/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — tests of the fd store messages (src/fd-store.c), read
 * from a datagram socket in the manager's place (NOTIFY_SOCKET) */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "fd-store.h"

typedef struct
{
  char *dir;
  int sock;
} Manager;

static void
manager_setup (Manager *m, gconstpointer data)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  g_autoptr (GError) error = NULL;

  m->dir = g_dir_make_tmp ("ab-fd-store-XXXXXX", &error);
  g_assert_no_error (error);
  g_snprintf (addr.sun_path, sizeof addr.sun_path, "%s/notify", m->dir);
  m->sock = socket (AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  g_assert_cmpint (m->sock, >=, 0);
  g_assert_cmpint (bind (m->sock, (struct sockaddr *)&addr, sizeof addr), ==,
                   0);
  g_setenv ("NOTIFY_SOCKET", addr.sun_path, TRUE);
}

static void
manager_teardown (Manager *m, gconstpointer data)
{
  g_autofree char *path = g_build_filename (m->dir, "notify", NULL);

  g_unsetenv ("NOTIFY_SOCKET");
  close (m->sock);
  g_unlink (path);
  g_rmdir (m->dir);
  g_free (m->dir);
}

/* The next message the manager was sent, and the descriptor that came
 * with it (-1 when none did). */
static char *
manager_receive (Manager *m, int *fd)
{
  char text[4096];
  union
  {
    struct cmsghdr align;
    char buffer[CMSG_SPACE (sizeof (int) * 4)];
  } control;
  struct iovec iov = { .iov_base = text, .iov_len = sizeof text - 1 };
  struct msghdr msg = { .msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = control.buffer,
                        .msg_controllen = sizeof control.buffer };
  ssize_t n = recvmsg (m->sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

  g_assert_cmpint (n, >=, 0);
  *fd = -1;
  for (struct cmsghdr *c = CMSG_FIRSTHDR (&msg); c != NULL;
       c = CMSG_NXTHDR (&msg, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
      {
        g_assert_cmpuint (c->cmsg_len, ==, CMSG_LEN (sizeof (int)));
        memcpy (fd, CMSG_DATA (c), sizeof (int));
      }
  return g_strndup (text, (gsize)n);
}

static void
assert_same_file (int a, int b)
{
  struct stat sa, sb;

  g_assert_cmpint (fstat (a, &sa), ==, 0);
  g_assert_cmpint (fstat (b, &sb), ==, 0);
  g_assert_cmpuint (sa.st_dev, ==, sb.st_dev);
  g_assert_cmpuint (sa.st_ino, ==, sb.st_ino);
}

/* A pipe's end goes to the store under its name, watched or not, and
 * stays the caller's. */
static void
test_add (Manager *m, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *watched = NULL;
  g_autofree char *unwatched = NULL;
  int fds[2], got;

  g_assert_cmpint (pipe (fds), ==, 0);
  g_assert_true (ab_fd_store_add (fds[0], "agent-abc-in", TRUE, &error));
  g_assert_no_error (error);
  watched = manager_receive (m, &got);
  g_assert_cmpstr (watched, ==, "FDSTORE=1\nFDNAME=agent-abc-in");
  g_assert_cmpint (got, >=, 0);
  g_assert_cmpint (got, !=, fds[0]);
  assert_same_file (got, fds[0]);
  close (got);

  g_assert_true (ab_fd_store_add (fds[1], "agent-abc-unread", FALSE, &error));
  g_assert_no_error (error);
  unwatched = manager_receive (m, &got);
  g_assert_cmpstr (unwatched, ==,
                   "FDSTORE=1\nFDPOLL=0\nFDNAME=agent-abc-unread");
  assert_same_file (got, fds[1]);
  close (got);

  /* Still open on the caller's side: a byte goes through. */
  g_assert_cmpint (write (fds[1], "x", 1), ==, 1);
  close (fds[0]);
  close (fds[1]);
}

static void
test_remove (Manager *m, gconstpointer data)
{
  g_autofree char *text = NULL;
  int got;

  ab_fd_store_remove ("agent-abc-out");
  text = manager_receive (m, &got);
  g_assert_cmpstr (text, ==, "FDSTOREREMOVE=1\nFDNAME=agent-abc-out");
  g_assert_cmpint (got, ==, -1);
}

/* A manager that is not there: an error that says why. */
static void
test_no_manager (Manager *m, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *gone = g_build_filename (m->dir, "gone", NULL);
  int fds[2];

  g_setenv ("NOTIFY_SOCKET", gone, TRUE);
  g_assert_cmpint (pipe (fds), ==, 0);
  g_assert_false (ab_fd_store_add (fds[0], "agent-abc-in", TRUE, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_assert_cmpstr (error->message, ==, g_strerror (ENOENT));
  /* Nothing to report, nothing to fail. */
  ab_fd_store_remove ("agent-abc-in");
  close (fds[0]);
  close (fds[1]);
}

/* Outside systemd (no NOTIFY_SOCKET) both are no-ops. */
static void
test_outside_systemd (Manager *m, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  int fds[2], got;

  g_unsetenv ("NOTIFY_SOCKET");
  g_assert_cmpint (pipe (fds), ==, 0);
  g_assert_true (ab_fd_store_add (fds[0], "agent-abc-in", TRUE, &error));
  g_assert_no_error (error);
  ab_fd_store_remove ("agent-abc-in");
  g_assert_cmpint (recv (m->sock, &got, sizeof got, MSG_DONTWAIT), ==, -1);
  close (fds[0]);
  close (fds[1]);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add ("/fd-store/add", Manager, NULL, manager_setup, test_add,
              manager_teardown);
  g_test_add ("/fd-store/remove", Manager, NULL, manager_setup, test_remove,
              manager_teardown);
  g_test_add ("/fd-store/no-manager", Manager, NULL, manager_setup,
              test_no_manager, manager_teardown);
  g_test_add ("/fd-store/outside-systemd", Manager, NULL, manager_setup,
              test_outside_systemd, manager_teardown);
  return g_test_run ();
}
