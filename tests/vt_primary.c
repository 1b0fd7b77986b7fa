/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vt-primary: a vtnet primary in its own executable (built with the real
 * driver, and as vt-primary-origin with the field report's bug).
 *
 *   vt-primary RUNDIR REGION PORT VHOST_SOCKET NQP MERGEABLE(1|-1) [server]
 *
 * Creates the region and the port, starts it, prints "ready", and closes
 * everything on SIGTERM.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mpops/mpops.h>
#include <mpops/vtnet.h>

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

int main(int argc, char **argv)
{
	struct mpops_region_opts ro = { .sz = sizeof(ro), .size = 64u << 20 };
	struct vtnet_conf c = { .sz = sizeof(c), .pool_size = 4096, .connect_timeout_ms = 20000 };
	struct mpops_region *r;
	struct vtnet_port *p;
	int rc;

	if (argc < 7) {
		fprintf(stderr, "usage: vt-primary RUNDIR REGION PORT VHOST_SOCKET NQP MERGEABLE [server]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGTERM, on_term);
	ro.runtime_dir = argv[1];
	c.vhost_path = argv[4];
	c.nb_qp = (uint16_t)atoi(argv[5]);
	c.mergeable = atoi(argv[6]);
	c.server = argc > 7 && strcmp(argv[7], "server") == 0;
	if ((rc = mpops_region_create(argv[2], &ro, &r)) < 0)
		return 1;
	if ((rc = vtnet_port_create(r, argv[3], &c, &p)) < 0 || (rc = vtnet_port_start(p)) < 0) {
		printf("port=%d\n", rc);
		mpops_region_detach(r);
		return 1;
	}
	printf("ready pid=%d\n", (int)getpid());
	while (!stop)
		pause();
	vtnet_port_close(p);
	mpops_region_detach(r);
	printf("closed\n");
	return 0;
}
