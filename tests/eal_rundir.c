/* SPDX-License-Identifier: BSD-3-Clause */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eal_rundir.h"

/* The files of @dir, with @depth levels of directories in them, then @dir. */
static void dir_remove(const char *dir, int depth)
{
	char path[1024];
	struct dirent *e;
	DIR *d;

	if (!(d = opendir(dir)))
		return;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (unlink(path) != 0 && depth > 0)
			dir_remove(path, depth - 1);
	}
	closedir(d);
	rmdir(dir);
}

void eal_rundir_remove(const char *prefix)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	char dir[256];

	if (!prefix || !*prefix || strchr(prefix, '/'))
		return;	/* never the parent directory */
	if (getuid() == 0)
		snprintf(dir, sizeof(dir), "/var/run/dpdk/%s", prefix);
	else
		snprintf(dir, sizeof(dir), "%s/dpdk/%s", xdg ? xdg : "/tmp", prefix);
	dir_remove(dir, 1);	/* net_mpops's mpops/ inside */
}
