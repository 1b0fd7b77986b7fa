/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "app_util.h"

double app_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One level: 1 created, 0 was there (a directory), -errno. */
static int dir_make_one(const char *path)
{
	struct stat st;

	if (mkdir(path, 0700) == 0)
		return 1;
	if (errno != EEXIST)
		return -errno;
	if (stat(path, &st) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

int app_dir_make(const char *path, char *created, size_t len)
{
	char tmp[4096];
	int rc;

	created[0] = '\0';
	if (!path[0])
		return -ENOENT;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s", path) >= sizeof(tmp) ||
	    strlen(path) >= len)
		return -ENAMETOOLONG;
	for (char *p = tmp + 1;; p++) {
		char c = *p;

		if (c != '/' && c != '\0')
			continue;
		*p = '\0';
		if ((rc = dir_make_one(tmp)) < 0)
			return rc;
		if (rc == 1 && !created[0])
			snprintf(created, len, "%s", tmp);
		*p = c;
		if (c == '\0')
			return 0;
	}
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st; (void)flag; (void)f;
	return remove(p);
}

void app_dir_remove(const char *dir)
{
	if (dir && dir[0])
		nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}
