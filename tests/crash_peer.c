/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * crash-peer: a secondary that dies by SIGKILL at a named test point
 * inside one of the library's critical sections, holding its lock, so that
 * a test can look at what the next locker makes of it. Built against the
 * static library: the test-point hook is internal (lib/priv.h).
 *
 *   crash-peer RUNDIR REGION POINT CMD [ARG]
 *
 * CMD: alloc SIZE | devalloc SIZE (in the device part) | free OFFSET | root NAME | attach (the hook is armed
 * before attaching: the process dies registering itself) | pool NAME N
 * (open pool NAME, allocate N buffers one bulk at a time and free them).
 * Prints "armed POINT" before the call and "dying at POINT" at it; exits 3
 * if the call returned without reaching the point. With CRASH_PEER_STOP=1
 * in its environment it stops there (SIGSTOP, "stopping at POINT") instead,
 * for the test to change what the lock protects before it kills it.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mpops/mpops.h>

#include "priv.h"

static const char *die_at;

static void die_here(const char *point)
{
	if (strcmp(point, die_at) != 0)
		return;
	if (getenv("CRASH_PEER_STOP")) {
		printf("stopping at %s\n", point);
		fflush(stdout);
		raise(SIGSTOP);
	}
	printf("dying at %s\n", point);
	fflush(stdout);
	raise(SIGKILL);
}

static int pool_cmd(struct mpops_region *r, const char *name, unsigned n)
{
	struct mpops_pkt *m[64];
	struct mpops_pktpool *p;
	mpops_off_t off;
	int rc;

	if ((rc = mpops_root_get(r, name, &off)) < 0 || (rc = mpops_pktpool_open(r, off, &p)) < 0)
		return rc;
	while (n) {
		unsigned k = n < 64 ? n : 64;

		mpops__test_point_hook = die_here;
		if ((rc = mpops_pkt_alloc_bulk(p, m, k)) < 0)
			return rc;
		mpops_pkt_free_bulk(p, m, k);
		n -= k;
	}
	mpops_pktpool_close(p);
	return 0;
}

int main(int argc, char **argv)
{
	struct mpops_attach_opts o = { .sz = sizeof(o) };
	struct mpops_region *r = NULL;
	const char *cmd;
	mpops_off_t off;
	int rc;

	if (argc < 5) {
		fprintf(stderr, "usage: crash-peer RUNDIR REGION POINT CMD [ARG]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	o.runtime_dir = argv[1];
	die_at = argv[3];
	cmd = argv[4];
	printf("armed %s\n", die_at);
	if (strcmp(cmd, "attach") == 0)
		mpops__test_point_hook = die_here;
	if ((rc = mpops_region_attach(argv[2], &o, &r)) < 0) {
		printf("attach=%d\n", rc);
		return 1;
	}
	mpops__test_point_hook = die_here;
	if (strcmp(cmd, "alloc") == 0 && argc > 5)
		rc = mpops_alloc(r, strtoull(argv[5], NULL, 0), 0, "crash", &off);
	else if (strcmp(cmd, "devalloc") == 0 && argc > 5)
		rc = mpops_alloc_dev(r, strtoull(argv[5], NULL, 0), 4096, "crash", &off);
	else if (strcmp(cmd, "free") == 0 && argc > 5)
		rc = mpops_free(r, strtoull(argv[5], NULL, 0));
	else if (strcmp(cmd, "root") == 0 && argc > 5)
		rc = mpops_root_set(r, argv[5], 4096);
	else if (strcmp(cmd, "pool") == 0 && argc > 6)
		rc = pool_cmd(r, argv[5], (unsigned)atoi(argv[6]));
	else if (strcmp(cmd, "attach") != 0)
		return 2;
	mpops__test_point_hook = NULL;
	printf("%s=%d: never reached %s\n", cmd, rc, die_at);
	mpops_region_detach(r);
	return 3;
}
