/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A secondary that plays a hostile peer of an AF_XDP port: with its own
 * copy of queue pair 0's socket (the port layer hands it over, as to any
 * secondary), it maps the rx ring and writes entries the kernel never
 * would, then receives through the driver; and it hands the driver a tx
 * packet that is no frame of one segment.
 *
 *   afxdp-hostile RUNDIR REGION PORT
 *
 * Prints "rx=N rx_errors=E tx_sent=S tx_errors=T tx_drops=D" and exits 0.
 */
#include <errno.h>
#include <linux/if_xdp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mpops/afxdp.h>
#include <mpops/mpops.h>
#include <mpops/pkt.h>
#include <mpops/port.h>
#include <mpops/port_driver.h>

int main(int argc, char **argv)
{
	struct mpops_attach_opts ao = { .sz = sizeof(ao) };
	struct mpops_port_queue_stats rx, tx;
	struct xdp_mmap_offsets off;
	socklen_t len = sizeof(off);
	struct mpops_region *r;
	struct mpops_port *port;
	struct mpops_pktpool *pool;
	struct mpops_pktpool_layout l = { .sz = sizeof(l) };
	struct mpops_pkt *pk[32], *a, *b, *c;
	struct xdp_desc *ring;
	uint32_t *prod, size;
	int fds[16], n, rc, got = 0, sent;
	void *m;

	if (argc != 4) {
		fprintf(stderr, "usage: afxdp-hostile RUNDIR REGION PORT\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	ao.runtime_dir = argv[1];
	if ((rc = mpops_region_attach(argv[2], &ao, &r)) < 0 ||
	    (rc = mpops_port_open(r, argv[3], &port)) < 0 || (rc = mpops_port_claim(port, 0)) < 0 ||
	    (n = rc = mpops_port_fds_get(port, fds, 16)) < 1) {
		fprintf(stderr, "afxdp-hostile: cannot attach, open, claim or get fds: %s\n",
			strerror(-rc));
		return 1;
	}
	pool = mpops_port_pool(port);
	/* Queue pair 0's rx ring, through this process's own fd. */
	if (getsockopt(fds[0], SOL_XDP, XDP_MMAP_OFFSETS, &off, &len) < 0)
		return 1;
	size = 1024;	/* the test's ring_size */
	m = mmap(NULL, off.rx.desc + size * sizeof(struct xdp_desc), PROT_READ | PROT_WRITE,
		 MAP_SHARED, fds[0], XDP_PGOFF_RX_RING);
	if (m == MAP_FAILED)
		return 1;
	prod = (uint32_t *)((char *)m + off.rx.producer);
	ring = (struct xdp_desc *)((char *)m + off.rx.desc);
	/* Two entries no kernel writes: an address past the UMEM, and a frame
	 * of this process's own with a length longer than any frame (the
	 * driver drops it and gives it back to the pool). */
	if (mpops_pktpool_layout(pool, &l) < 0 || !(c = mpops_pkt_alloc(pool)))
		return 1;
	ring[*prod & (size - 1)] = (struct xdp_desc){ .addr = 1ull << 40, .len = 64 };
	ring[(*prod + 1) & (size - 1)] =
		(struct xdp_desc){ .addr = c->buf_off - l.data_off + 256, .len = 60000 };
	__atomic_store_n(prod, *prod + 2, __ATOMIC_RELEASE);
	for (int i = 0; i < 10; i++) {
		int k = mpops_rx_burst(port, 0, pk, 32);

		if (k > 0) {
			got += k;
			mpops_pkt_free_bulk(pool, pk, (unsigned)k);
		}
	}
	/* A two-segment chain: not one frame. */
	a = mpops_pkt_alloc(pool);
	b = mpops_pkt_alloc(pool);
	if (!a || !b)
		return 1;
	a->data_len = b->data_len = 60;
	a->pkt_len = 120;
	a->nb_segs = 2;
	a->next = mpops_off(mpops_region_base(r), b);
	sent = mpops_tx_burst(port, 0, &a, 1);
	mpops_port_stats_get(port, 0, &rx, &tx);
	printf("rx=%d rx_errors=%llu tx_sent=%d tx_errors=%llu tx_drops=%llu\n", got,
	       (unsigned long long)rx.errors, sent, (unsigned long long)tx.errors,
	       (unsigned long long)tx.drops);
	munmap(m, off.rx.desc + size * sizeof(struct xdp_desc));
	for (int i = 0; i < n; i++)
		close(fds[i]);
	mpops_port_release(port, 0);
	mpops_port_close(port);
	mpops_region_detach(r);
	return 0;
}
