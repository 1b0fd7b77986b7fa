/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mpops-demo-worker: one secondary of the demo, its own executable.
 *
 *   mpops-demo-worker RUNDIR REGION PORT QUEUE SECONDS SIZE
 *
 * Attaches to the region, opens the port, claims queue pair QUEUE and, for
 * SECONDS, transmits packets of SIZE bytes stamped with its pid and queue
 * and receives what the backend sends back, checking each stamp. A packet
 * may come back on another queue pair than the one that sent it (a switch
 * returns it on whichever queue its thread polls): that is counted
 * (rx_other_queues), not an error; a malformed stamp is. Quiet while it
 * runs (the primary prints the live rates from the shared counters); at
 * the end it audits shared memory and prints one JSON line.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mpops/mpops.h>
#include <mpops/vtnet.h>
#ifdef MPOPS_HAVE_AFXDP
#include <mpops/afxdp.h>	/* links the driver: it registers itself */
#endif

#include "app_util.h"

#define BURST 32

struct stamp {
	uint8_t dst[6], src[6];
	uint16_t ethertype;
	uint32_t magic;
	int32_t pid;
	uint16_t queue;
	uint64_t seq;
} __attribute__((packed));

#define STAMP_MAGIC 0x6d706f70u

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

int main(int argc, char **argv)
{
	struct mpops_attach_opts ao = { .sz = sizeof(ao) };
	uint64_t tx = 0, rx = 0, other = 0, bad = 0, seq = 0;
	struct mpops_port_info pi;
	struct mpops_audit_finding f[4];
	struct mpops_region *r;
	struct mpops_pktpool *pool;
	struct mpops_port_queue_stats rxs, txs;
	struct mpops_port *p;
	double end;
	uint16_t q;
	unsigned size;
	void *base;
	int rc, audit;

	if (argc != 7) {
		fprintf(stderr, "usage: mpops-demo-worker RUNDIR REGION PORT QUEUE SECONDS SIZE\n");
		return 2;
	}
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	ao.runtime_dir = argv[1];
	q = (uint16_t)atoi(argv[4]);
	size = (unsigned)atoi(argv[6]);
	if (size < sizeof(struct stamp) || size > 9000) {
		fprintf(stderr, "mpops-demo-worker: packet size %u out of range (%zu..9000)\n", size,
			sizeof(struct stamp));
		return 2;
	}
	if ((rc = mpops_region_attach(argv[2], &ao, &r)) < 0)
		return 1;
	if ((rc = mpops_port_open(r, argv[3], &p)) < 0 || (rc = mpops_port_claim(p, q)) < 0) {
		mpops_region_detach(r);
		return 1;
	}
	mpops_port_info_get(p, &pi);
	if (strcmp(pi.driver, "vtnet") == 0) {
		struct vtnet_info in;

		vtnet_info_get(p, &in);
		printf("resolved: secondary pid %d, queue %u: ops ID %u = %s -> ops table %p in its own process\n",
		       (int)getpid(), q, in.ops_id, in.transport, in.ops_local);
	} else {
		/* Any other driver: its own ops ID, resolved here. */
		printf("resolved: secondary pid %d, queue %u: ops ID %u = mpops_port_drv/%s -> ops table %p in its own process\n",
		       (int)getpid(), q, pi.driver_id, pi.driver, pi.driver_local);
	}
	fflush(stdout);
	pool = mpops_port_pool(p);
	base = mpops_region_base(r);
	end = app_now_s() + atof(argv[5]);
	while (!stop && app_now_s() < end) {
		struct mpops_pkt *pk[BURST];
		int n;

		if (mpops_pkt_alloc_bulk(pool, pk, BURST) == 0) {
			for (int i = 0; i < BURST; i++) {
				struct stamp *s = mpops_pkt_data(base, pk[i]);

				memset(s, 0, sizeof(*s));
				memset(s->dst, 0xff, 6);
				s->ethertype = 0xb588;	/* local experimental ethertype */
				s->magic = STAMP_MAGIC;
				s->pid = getpid();
				s->queue = q;
				s->seq = seq++;
				pk[i]->data_len = (uint16_t)size;
				pk[i]->pkt_len = size;
			}
			n = mpops_tx_burst(p, q, pk, BURST);
			if (n < 0)
				n = 0;
			tx += (uint64_t)n;
			if (n < BURST)
				mpops_pkt_free_bulk(pool, pk + n, (unsigned)(BURST - n));
		}
		n = mpops_rx_burst(p, q, pk, BURST);
		for (int i = 0; i < n; i++) {
			struct stamp *s = mpops_pkt_data(base, pk[i]);

			/* Any worker's packet may arrive on our queue. */
			if (pk[i]->pkt_len != size || s->magic != STAMP_MAGIC ||
			    s->queue >= pi.nb_qp)
				bad++;
			else if (s->queue != q || s->pid != getpid())
				other++;
			mpops_pkt_free(pool, pk[i]);
		}
		if (n > 0)
			rx += (uint64_t)n;
	}
	mpops_port_stats_get(p, q, &rxs, &txs);
	audit = mpops_audit(r, NULL, f, 4);
	printf("{\"role\": \"secondary\", \"pid\": %d, \"queue\": %u, \"rx_packets\": %llu, \"rx_other_queues\": %llu, \"tx_packets\": %llu, \"errors\": %llu, \"kicks\": %llu, \"audit_findings\": %d}\n",
	       (int)getpid(), q, (unsigned long long)rx, (unsigned long long)other,
	       (unsigned long long)tx,
	       (unsigned long long)(bad + rxs.errors + txs.errors),
	       (unsigned long long)(rxs.kicks + txs.kicks), audit);
	fflush(stdout);
	mpops_port_close(p);
	mpops_region_detach(r);
	return bad || audit != 0 ? 1 : 0;
}
