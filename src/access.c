/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — access levels from Unix credentials
 *
 * On the system bus a caller's groups decide: access.admins (and root)
 * may do everything, access.users may prompt
 * and read. On the session bus the user is the admin of their own
 * broker and nobody else gets in.
 */
#include "config.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <glib/gi18n.h>

#include "access.h"

static gboolean
uid_in_any_group (uid_t uid, char *const *group_names)
{
  struct passwd pw_buf, *pw = NULL;
  char buf[4096];
  gid_t groups[256];
  int n_groups = G_N_ELEMENTS (groups);

  if (group_names == NULL || group_names[0] == NULL)
    return FALSE;
  if (getpwuid_r (uid, &pw_buf, buf, sizeof buf, &pw) != 0 || pw == NULL)
    return FALSE;
  /* A member of more groups than fit is judged on the first 256. */
  if (getgrouplist (pw->pw_name, pw->pw_gid, groups, &n_groups) < 0)
    n_groups = G_N_ELEMENTS (groups);

  for (char *const *name = group_names; *name != NULL; name++)
    {
      struct group gr_buf, *gr = NULL;
      char gbuf[8192];

      if (getgrnam_r (*name, &gr_buf, gbuf, sizeof gbuf, &gr) != 0
          || gr == NULL)
        continue;
      for (int i = 0; i < n_groups; i++)
        if (groups[i] == gr->gr_gid)
          return TRUE;
    }
  return FALSE;
}

AbAccess
ab_access_for_uid (const AbConfig *config, uid_t uid, gboolean system_bus)
{
  /* On the system bus the daemon's own uid is not trusted: its agents
   * run as that uid and act on whatever a prompt tells them. */
  if (!system_bus)
    return uid == getuid () ? AB_ACCESS_ADMIN : AB_ACCESS_NONE;
  if (uid == 0 || uid_in_any_group (uid, config->access_admins))
    return AB_ACCESS_ADMIN;
  if (uid_in_any_group (uid, config->access_users))
    return AB_ACCESS_USER;
  return AB_ACCESS_NONE;
}

const char *
ab_access_to_string (AbAccess access)
{
  switch (access)
    {
    case AB_ACCESS_ADMIN:
      return _ ("admin access");
    case AB_ACCESS_USER:
      return _ ("user access");
    case AB_ACCESS_NONE:
    default:
      return _ ("no access");
    }
}
