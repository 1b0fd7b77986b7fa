/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vt-primary: a vtnet primary in its own executable (built with the real
 * driver, and as vt-primary-origin with the field report's bug).
 *
 *   vt-primary RUNDIR REGION PORT VHOST_SOCKET NQP MERGEABLE(1|-1) [server]
 *
 * Creates the region and the port, starts it, prints "ready", and closes
 * everything on SIGTERM. Built twice: vt-primary, and vt-primary-origin with
 * the field report's bug (tests/vtnet_origin.c).
 *
 * PORT and VHOST_SOCKET may be comma-separated lists (one port each), and a
 * VHOST_SOCKET of the form TRANSPORT:PCIADDR (e.g. pci:0000:00:01.0,
 * pci-legacy:00:02.0) makes a PCI port: the region is then on hugepages
 * with physical addresses (MPOPS_REGION_F_PHYS). SIGUSR1 stops and starts
 * every port again (prints "restarted rc=N").
 *
 * VT_PRIMARY_SERVE_QP=N: the primary claims queue pair N of the first port
 * and keeps it; each SIGUSR2 runs one round of 600 packets looped back
 * ("primary round=K sent=... received=... bad=...").
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mpops/mpops.h>
#include <mpops/vtnet.h>

#include "vt_traffic.h"
#ifdef VT_ORIGIN
#include "vtnet_origin.h"
#endif

volatile sig_atomic_t stop;
static volatile sig_atomic_t restart, go;
static void on_term(int sig) { (void)sig; stop = 1; }
static void on_usr1(int sig) { (void)sig; restart = 1; }
static void on_usr2(int sig) { (void)sig; go = 1; }

static void log_out(enum mpops_log_level level, const char *line, void *arg)
{
	(void)level;
	(void)arg;
	printf("log: %s\n", line);
	fflush(stdout);
}

#define MAX_PORTS 4

int main(int argc, char **argv)
{
	struct mpops_region_opts ro = { .sz = sizeof(ro), .size = 64u << 20 };
	struct mpops_port *p[MAX_PORTS] = { 0 };
	char names[256], targets[512], *sn, *st, *name, *target;
	struct mpops_region *r;
	int rc, n = 0, rounds = 0;

	if (argc < 7) {
		fprintf(stderr, "usage: vt-primary RUNDIR REGION PORT VHOST_SOCKET NQP MERGEABLE [server]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (getenv("VT_PRIMARY_LOG"))
		mpops_log_set(log_out, NULL);
	signal(SIGTERM, on_term);
	signal(SIGUSR1, on_usr1);
	signal(SIGUSR2, on_usr2);
	ro.runtime_dir = argv[1];
	snprintf(names, sizeof(names), "%s", argv[3]);
	snprintf(targets, sizeof(targets), "%s", argv[4]);
	if (strncmp(targets, "pci", 3) == 0) {
		ro.size = 32u << 20;
		ro.backing = MPOPS_BACKING_MEMFD_HUGETLB;
		ro.flags = MPOPS_REGION_F_PHYS;
	}
	if ((rc = mpops_region_create(argv[2], &ro, &r)) < 0) {
		printf("region=%d\n", rc);
		return 1;
	}
	for (name = strtok_r(names, ",", &sn), target = strtok_r(targets, ",", &st);
	     name && target && n < MAX_PORTS;
	     name = strtok_r(NULL, ",", &sn), target = strtok_r(NULL, ",", &st), n++) {
		struct vtnet_conf c = { .sz = sizeof(c), .pool_size = 4096, .connect_timeout_ms = 20000 };
		char tr[16];

		c.nb_qp = (uint16_t)atoi(argv[5]);
		c.mergeable = atoi(argv[6]);
		c.server = argc > 7 && strcmp(argv[7], "server") == 0;
		if (strncmp(target, "pci", 3) == 0 && strchr(target, ':')) {
			snprintf(tr, sizeof(tr), "%.*s", (int)(strchr(target, ':') - target), target);
			c.transport = tr;
			c.pci_addr = strchr(target, ':') + 1;
			c.pool_size = 2048;
		} else {
			c.vhost_path = target;
		}
		rc = vtnet_port_create(r, name, &c, &p[n]);
#ifdef VT_ORIGIN
		/* The field report's layout: the ops pointer in shared memory. */
		if (rc == 0)
			rc = vtnet_origin_install(p[n]);
#endif
		if (rc < 0 || (rc = mpops_port_start(p[n])) < 0) {
			printf("port=%d\n", rc);
			for (int i = 0; i < n; i++)
				mpops_port_close(p[i]);
			if (p[n])
				mpops_port_close(p[n]);
			mpops_region_detach(r);
			return 1;
		}
	}
	if (getenv("VT_PRIMARY_SERVE_QP") &&
	    (rc = mpops_port_claim(p[0], (uint16_t)atoi(getenv("VT_PRIMARY_SERVE_QP")))) < 0) {
		printf("claim=%d\n", rc);
		for (int i = 0; i < n; i++)
			mpops_port_close(p[i]);
		mpops_region_detach(r);
		return 1;
	}
	printf("ready pid=%d\n", (int)getpid());
	while (!stop) {
		/* Not pause(): a signal that came while a round or a restart ran would
		 * wait for the next one. */
		if (!restart && !go && !stop)
			usleep(10000);
		if (go && getenv("VT_PRIMARY_SERVE_QP")) {
			uint64_t sent, got, bad;

			go = 0;
			traffic("loop", p[0], mpops_region_base(r),
				(uint16_t)atoi(getenv("VT_PRIMARY_SERVE_QP")), 600, 64, &sent, &got,
				&bad);
			printf("primary round=%d sent=%llu received=%llu bad=%llu\n", ++rounds,
			       (unsigned long long)sent, (unsigned long long)got,
			       (unsigned long long)bad);
		}
		if (restart) {
			restart = 0;
			rc = 0;
			for (int i = 0; i < n && rc == 0; i++)
				if ((rc = mpops_port_stop(p[i])) == 0)
					rc = mpops_port_start(p[i]);
			printf("restarted rc=%d\n", rc);
		}
	}
	for (int i = 0; i < n; i++)
		mpops_port_close(p[i]);
	mpops_region_detach(r);
	printf("closed\n");
	return 0;
}
