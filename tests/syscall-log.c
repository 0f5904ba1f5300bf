/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker tests — an LD_PRELOAD shim that logs file system calls
 *
 * Built for the tests only (tests/test-store-syscalls). With
 * AB_SYSCALL_LOG set to a file and AB_SYSCALL_LOG_DIR to a directory, every
 * open, openat, write, fsync, fdatasync, rename, renameat, renameat2 and
 * close of a path in that directory (or the directory itself) is appended
 * to the file as one line: the thread id, the call, the path, then the
 * open flags, the bytes written or the new name; tab-separated. Calls are
 * passed on unchanged; the log is written under a lock, so lines of
 * several threads do not mix and their order is the order of the calls.
 */
#define _GNU_SOURCE

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FDS 4096

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char *fd_paths[MAX_FDS]; /* watched fds: their paths */
static int log_fd = -1;

static int (*real_open) (const char *, int, ...);
static int (*real_openat) (int, const char *, int, ...);
static ssize_t (*real_write) (int, const void *, size_t);
static int (*real_fsync) (int);
static int (*real_fdatasync) (int);
static int (*real_rename) (const char *, const char *);
static int (*real_renameat) (int, const char *, int, const char *);
static int (*real_renameat2) (int, const char *, int, const char *,
                              unsigned int);
static int (*real_close) (int);

static pthread_once_t resolved = PTHREAD_ONCE_INIT;

static void
resolve_once (void)
{
  real_openat = dlsym (RTLD_NEXT, "openat");
  real_write = dlsym (RTLD_NEXT, "write");
  real_fsync = dlsym (RTLD_NEXT, "fsync");
  real_fdatasync = dlsym (RTLD_NEXT, "fdatasync");
  real_rename = dlsym (RTLD_NEXT, "rename");
  real_renameat = dlsym (RTLD_NEXT, "renameat");
  real_renameat2 = dlsym (RTLD_NEXT, "renameat2");
  real_close = dlsym (RTLD_NEXT, "close");
  real_open = dlsym (RTLD_NEXT, "open");
}

static void
resolve (void)
{
  pthread_once (&resolved, resolve_once);
}

/* @path made absolute against @dirfd; NULL if it is not watched. */
static char *
watched_path (int dirfd, const char *path)
{
  const char *dir = getenv ("AB_SYSCALL_LOG_DIR");
  char *full = NULL;
  size_t n;

  if (dir == NULL || path == NULL)
    return NULL;
  if (path[0] == '/')
    full = strdup (path);
  else if (dirfd >= 0 && dirfd < MAX_FDS && dirfd != AT_FDCWD)
    {
      pthread_mutex_lock (&lock);
      if (fd_paths[dirfd] != NULL
          && asprintf (&full, "%s/%s", fd_paths[dirfd], path) < 0)
        full = NULL;
      pthread_mutex_unlock (&lock);
    }
  else
    {
      char cwd[4096];

      if (getcwd (cwd, sizeof cwd) != NULL
          && asprintf (&full, "%s/%s", cwd, path) < 0)
        full = NULL;
    }
  if (full == NULL)
    return NULL;
  n = strlen (dir);
  if (strncmp (full, dir, n) == 0 && (full[n] == '\0' || full[n] == '/'))
    return full;
  free (full);
  return NULL;
}

static char *
fd_path (int fd)
{
  char *path = NULL;

  if (fd < 0 || fd >= MAX_FDS)
    return NULL;
  pthread_mutex_lock (&lock);
  if (fd_paths[fd] != NULL)
    path = strdup (fd_paths[fd]);
  pthread_mutex_unlock (&lock);
  return path;
}

static void
log_line (const char *op, const char *path, const char *arg)
{
  char *line = NULL;
  int len;

  len = asprintf (&line, "%d\t%s\t%s\t%s\n", (int)gettid (), op, path,
                  arg != NULL ? arg : "");
  if (len < 0)
    return;
  pthread_mutex_lock (&lock);
  resolve ();
  if (log_fd < 0 && getenv ("AB_SYSCALL_LOG") != NULL)
    log_fd = real_open (getenv ("AB_SYSCALL_LOG"),
                        O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (log_fd >= 0 && real_write (log_fd, line, (size_t)len) != len)
    abort (); /* a log with a hole in it would mislead the test */
  pthread_mutex_unlock (&lock);
  free (line);
}

static void
opened (int fd, char *path, int flags)
{
  char arg[64];

  snprintf (
      arg, sizeof arg, "%s%s%s%s", (flags & O_ACCMODE) == O_RDONLY ? "r" : "w",
      (flags & O_CREAT) ? ",creat" : "", (flags & O_TRUNC) ? ",trunc" : "",
      (flags & O_APPEND) ? ",append" : "");
  log_line (fd >= 0 ? "open" : "open-failed", path, arg);
  if (fd >= 0 && fd < MAX_FDS)
    {
      pthread_mutex_lock (&lock);
      free (fd_paths[fd]);
      fd_paths[fd] = path;
      pthread_mutex_unlock (&lock);
    }
  else
    free (path);
}

static int
do_openat (int dirfd, const char *path, int flags, mode_t mode)
{
  char *watched;
  int fd;

  resolve ();
  watched = watched_path (dirfd, path);
  fd = dirfd == AT_FDCWD ? real_open (path, flags, mode)
                         : real_openat (dirfd, path, flags, mode);
  if (watched != NULL)
    {
      int saved = errno;
      opened (fd, watched, flags);
      errno = saved;
    }
  return fd;
}

#define MODE_ARG(flags, mode)                                                  \
  do                                                                           \
    {                                                                          \
      if ((flags) & (O_CREAT | O_TMPFILE))                                     \
        {                                                                      \
          va_list ap;                                                          \
          va_start (ap, flags);                                                \
          mode = va_arg (ap, mode_t);                                          \
          va_end (ap);                                                         \
        }                                                                      \
    }                                                                          \
  while (0)

int
open (const char *path, int flags, ...)
{
  mode_t mode = 0;

  MODE_ARG (flags, mode);
  return do_openat (AT_FDCWD, path, flags, mode);
}

int
open64 (const char *path, int flags, ...)
{
  mode_t mode = 0;

  MODE_ARG (flags, mode);
  return do_openat (AT_FDCWD, path, flags | O_LARGEFILE, mode);
}

int
openat (int dirfd, const char *path, int flags, ...)
{
  mode_t mode = 0;

  MODE_ARG (flags, mode);
  return do_openat (dirfd, path, flags, mode);
}

int
openat64 (int dirfd, const char *path, int flags, ...)
{
  mode_t mode = 0;

  MODE_ARG (flags, mode);
  return do_openat (dirfd, path, flags | O_LARGEFILE, mode);
}

ssize_t
write (int fd, const void *buf, size_t count)
{
  char *path;
  ssize_t n;

  resolve ();
  n = real_write (fd, buf, count);
  path = fd_path (fd);
  if (path != NULL)
    {
      int saved = errno;
      char arg[32];

      snprintf (arg, sizeof arg, "%zd", n);
      log_line ("write", path, arg);
      free (path);
      errno = saved;
    }
  return n;
}

static int
log_sync (const char *op, int fd, int (*real) (int))
{
  char *path;
  int ret;

  resolve ();
  ret = real (fd);
  path = fd_path (fd);
  if (path != NULL)
    {
      int saved = errno;
      log_line (ret == 0 ? op : "sync-failed", path, NULL);
      free (path);
      errno = saved;
    }
  return ret;
}

int
fsync (int fd)
{
  resolve ();
  return log_sync ("fsync", fd, real_fsync);
}

int
fdatasync (int fd)
{
  resolve ();
  return log_sync ("fdatasync", fd, real_fdatasync);
}

static void
log_rename (int ret, int olddirfd, const char *oldpath, int newdirfd,
            const char *newpath)
{
  int saved = errno;
  char *from = watched_path (olddirfd, oldpath);
  char *to = watched_path (newdirfd, newpath);

  if (from != NULL || to != NULL)
    log_line (ret == 0 ? "rename" : "rename-failed",
              from != NULL ? from : oldpath, to != NULL ? to : newpath);
  free (from);
  free (to);
  errno = saved;
}

int
rename (const char *oldpath, const char *newpath)
{
  int ret;

  resolve ();
  ret = real_rename (oldpath, newpath);
  log_rename (ret, AT_FDCWD, oldpath, AT_FDCWD, newpath);
  return ret;
}

int
renameat (int olddirfd, const char *oldpath, int newdirfd, const char *newpath)
{
  int ret;

  resolve ();
  ret = real_renameat (olddirfd, oldpath, newdirfd, newpath);
  log_rename (ret, olddirfd, oldpath, newdirfd, newpath);
  return ret;
}

int
renameat2 (int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
           unsigned int flags)
{
  int ret;

  resolve ();
  ret = real_renameat2 (olddirfd, oldpath, newdirfd, newpath, flags);
  log_rename (ret, olddirfd, oldpath, newdirfd, newpath);
  return ret;
}

int
close (int fd)
{
  char *path = NULL;

  resolve ();
  if (fd >= 0 && fd < MAX_FDS)
    {
      pthread_mutex_lock (&lock);
      path = fd_paths[fd];
      fd_paths[fd] = NULL;
      pthread_mutex_unlock (&lock);
    }
  if (path != NULL)
    {
      log_line ("close", path, NULL);
      free (path);
    }
  return real_close (fd);
}
