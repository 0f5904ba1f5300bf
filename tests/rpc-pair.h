/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker tests — an AbJsonRpc on one end of a socketpair, the test
 * playing the agent on the other */
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <gio/gunixinputstream.h>
#include <gio/gunixoutputstream.h>

#include "jsonrpc.h"

G_BEGIN_DECLS

/* A connection reading and writing lines of at most @max_line bytes, not
 * yet started; *@agent_fd is the test's end, the caller's to close. */
static inline AbJsonRpc *
ab_test_rpc_pair (gsize max_line, int *agent_fd)
{
  int fds[2];
  g_autoptr (GInputStream) in = NULL;
  g_autoptr (GOutputStream) out = NULL;

  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), ==,
                   0);
  *agent_fd = fds[1];
  in = g_unix_input_stream_new (fds[0], TRUE);
  out = g_unix_output_stream_new (dup (fds[0]), TRUE);
  return ab_jsonrpc_new (in, out, max_line);
}

G_END_DECLS
