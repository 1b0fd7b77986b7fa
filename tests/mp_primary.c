/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mp-primary: a primary in its own executable, for tests where the test
 * process is the secondary (e.g. the primary dies under it).
 *   mp-primary RUNDIR REGION [UID:GID:ALLOW[:MODE]]
 * Publishes the demo devices, prints "ready", exits cleanly on SIGTERM.
 * With the last argument, it first becomes user UID (group GID), lets
 * group ALLOW attach ("-": none) and gives the socket MODE (octal).
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "as_user.h"
#include "demo_ops.h"

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

int main(int argc, char **argv)
{
	struct mpops_region_opts o = { .sz = sizeof(o) };
	const struct mpops_ops_impl *impls[] = {
		&mpops_impl_demo_alpha, &mpops_impl_demo_beta, &mpops_impl_demo_gamma,
	};
	struct demo_devs_shared *devs;
	struct mpops_region *r;
	mpops_off_t off;
	int rc;

	if (argc != 3 && argc != 4) {
		fprintf(stderr, "usage: mp-primary RUNDIR REGION [UID:GID:ALLOW[:MODE]]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	o.runtime_dir = argv[1];
	if (argc == 4) {
		long allow;

		if (as_user_spec(argv[3], &allow, &o.socket_mode) < 0) {
			perror("mp-primary: UID:GID:ALLOW[:MODE]");
			return 2;
		}
		o.flags = allow < 0 ? 0 : MPOPS_REGION_F_GROUP;
		o.gid = allow < 0 ? 0 : (uint32_t)allow;
	}
	if ((rc = mpops_region_create(argv[2], &o, &r)) < 0)
		return 1;
	if ((rc = mpops_alloc(r, sizeof(*devs), 0, "demo.devs", &off)) < 0)
		return 1;
	devs = mpops_ptr(mpops_region_base(r), off);
	devs->n = 3;
	for (unsigned i = 0; i < 3; i++) {
		devs->dev[i].index = i;
		if (mpops_ops_id(impls[i], &devs->dev[i].ops_id) < 0)
			return 1;
	}
	if (mpops_root_set(r, "devs", off) < 0)
		return 1;
	signal(SIGTERM, on_term);
	printf("ready pid=%d\n", (int)getpid());
	while (!stop)
		pause();
	mpops_region_detach(r);
	return 0;
}
