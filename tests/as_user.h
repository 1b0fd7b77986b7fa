/* SPDX-License-Identifier: BSD-3-Clause */
/* Test helpers that run as root: become another user. */
#ifndef MPOPS_TEST_AS_USER_H
#define MPOPS_TEST_AS_USER_H

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Drop root for @uid, with @gid as the only group. 0 or -errno. */
static inline int as_user(unsigned uid, unsigned gid)
{
	gid_t g = (gid_t)gid;

	if (setgroups(1, &g) < 0 || setresgid(g, g, g) < 0 || setresuid(uid, uid, uid) < 0)
		return -errno;
	return 0;
}

/*
 * "UID:GID:ALLOW[:MODE]": become UID (group GID), and the group the region
 * lets in (ALLOW, or "-" for none, *allow = -1) and the socket mode (0 if
 * not given). 0 or -errno (-EINVAL: not that shape).
 */
static inline int as_user_spec(const char *spec, long *allow, unsigned *mode)
{
	unsigned uid, gid;
	char a[16];
	int n = sscanf(spec, "%u:%u:%15[^:]:%o", &uid, &gid, a, mode);

	if (n < 3)
		return -EINVAL;
	if (n < 4)
		*mode = 0;
	*allow = a[0] == '-' ? -1 : (long)strtoul(a, NULL, 10);
	return as_user(uid, gid);
}

#endif
