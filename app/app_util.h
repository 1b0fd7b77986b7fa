/* SPDX-License-Identifier: BSD-3-Clause */
/* What the command-line programs in app/ share. Private to them. */
#ifndef MPOPS_APP_UTIL_H
#define MPOPS_APP_UTIL_H

#include <stddef.h>

/* Seconds on the monotonic clock. */
double app_now_s(void);

/**
 * Create directory @p path and its missing parents (mkdir -p), mode 0700
 * for what it creates. @p created gets the topmost directory this call
 * created ("" when @p path existed), for app_dir_remove() at exit.
 * @return 0, -ENOENT empty path, -ENAMETOOLONG, -ENOTDIR, or mkdir's -errno.
 */
int app_dir_make(const char *path, char *created, size_t len);

/* Remove @p dir and everything in it; nothing when @p dir is "". */
void app_dir_remove(const char *dir);

#endif
