/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * outside-secondary RUNDIR REGION EXPECT
 *
 * A secondary of outside-primary, built into several executables that
 * link different subsets of the blink implementations, in different
 * orders, shared or static. It attaches, checks that the IDs mean the same
 * here, and for each device: with an implementation EXPECT names, the
 * checked resolution succeeds and every op runs this program's code;
 * without, the resolution is -ENOENT with the line that says what to do,
 * and the ops are the dummy's (-ENOTSUP). Exit 0 when all that holds.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "blink.h"
#ifdef BLINK_REQUIRE
#include "blink_require.h"
#endif

static char logbuf[8192];

static void log_keep(enum mpops_log_level level, const char *line, void *arg)
{
	size_t n = strlen(logbuf);

	(void)level;
	(void)arg;
	printf("log: %s\n", line);
	snprintf(logbuf + n, sizeof(logbuf) - n, "%s\n", line);
}

static int bad(const char *what, const char *impl)
{
	printf("FAIL blink/%s: %s\n", impl, what);
	return -1;
}

/* The device of @impl, whose implementation this program has. */
static int check_mine(struct blink_dev_shared *d, const char *impl)
{
	const struct blink_ops *ops;
	char name[64], want[64];
	int rc = mpops_ops_resolve_blink(d->ops_id, &ops);

	if (rc < 0)
		return bad("not resolved, though this program links it", impl);
	if (MPOPS_OPS(blink, d->ops_id)->open(d) != 0 ||
	    MPOPS_OPS(blink, d->ops_id)->blink(d, 3) != 3 ||
	    MPOPS_OPS(blink, d->ops_id)->total(d) != (long)d->blinks)
		return bad("an op failed", impl);
	MPOPS_OPS(blink, d->ops_id)->name(name, sizeof(name));
	snprintf(want, sizeof(want), "%s@%d", impl, (int)getpid());
	if (strcmp(name, want) != 0 || d->last_pid != getpid())
		return bad("another program's code ran", impl);
	return 0;
}

/* The device of @impl, which this program lacks: refused, never run. */
static int check_missing(struct blink_dev_shared *d, const char *impl)
{
	const struct blink_ops *ops;
	char line[128];
	int rc = mpops_ops_resolve_blink(d->ops_id, &ops);

	snprintf(line, sizeof(line), "blink/%s is not registered in this process", impl);
	if (rc != -ENOENT || !strstr(logbuf, line) || !strstr(logbuf, "meson link_whole"))
		return bad("resolved, or without the line that says how to link it", impl);
	if (MPOPS_OPS(blink, d->ops_id)->blink(d, 3) != -ENOTSUP ||
	    MPOPS_OPS(blink, d->ops_id)->total(d) != -ENOTSUP)
		return bad("the hot path did not land on the dummy", impl);
	return 0;
}

int main(int argc, char **argv)
{
	static const char *const names[BLINK_DEVS] = { "fast", "slow" };
	struct mpops_attach_opts o = { .sz = sizeof(o) };
	struct blink_devs_shared *devs;
	struct mpops_region *r;
	mpops_off_t off;
	int failed = 0;

	if (argc != 4) {
		fprintf(stderr, "usage: outside-secondary RUNDIR REGION EXPECT\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	mpops_log_set(log_keep, NULL);
	o.runtime_dir = argv[1];
	if (mpops_region_attach(argv[2], &o, &r) < 0)
		return 1;
	if (mpops_root_get(r, BLINK_ROOT, &off) < 0) {
		mpops_region_detach(r);
		return 1;
	}
	devs = mpops_ptr(mpops_region_base(r), off);
	for (unsigned i = 0; i < BLINK_DEVS; i++) {
		struct blink_dev_shared *d = &devs->dev[i];
		mpops_ops_id_t id;

		/* The same ID here, whatever this program registered, in any order. */
		if (mpops_ops_find("blink", names[i], &id) < 0 || id != d->ops_id)
			failed += bad("its ID differs here", names[i]) < 0;
		else if (strstr(argv[3], names[i]))
			failed += check_mine(d, names[i]) < 0;
		else
			failed += check_missing(d, names[i]) < 0;
	}
	mpops_region_detach(r);
	return failed ? 1 : 0;
}
