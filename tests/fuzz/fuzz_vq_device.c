/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer harness: the driver's used-ring and descriptor processing
 * (drivers/virtio/rxtx.c and virtqueue.c, the real sources) against a
 * device that may write anything it can write between the driver's calls:
 * the descriptor tables, the avail rings (used_event) and the used rings
 * (ids, lengths, indices, flags, avail_event), and the buffers' bytes (the
 * num_buffers of a mergeable header). One rx and one tx queue of a port
 * made by hand in a real region with a real pool.
 *
 * Input: byte 0 options (bit 0 MRG_RXBUF, bit 1 IN_ORDER, bit 2 EVENT_IDX,
 * bits 3-4 ring size 16 << n), then operations, each a byte and its
 * arguments:
 *   0 T O O L data[L]  the device writes L+1 bytes (L = byte % 8) at offset
 *                      O (16 bits, modulo the part) of part T % 6: rx desc,
 *                      rx avail, rx used, tx desc, tx avail, tx used
 *   1 Q K N            the device uses K % 9 entries of queue Q & 1 as a
 *                      device would (rx: length N, num_buffers 1 written in
 *                      the buffer it points at, if it points into the region)
 *   2 N                rx burst of N % 40, what comes is freed
 *   3 N C              tx burst of N % 40 frames (two segments each if C & 1)
 *   4 Q                a new owner's repair of queue Q & 1 (vq_repair), the
 *                      buffers it does not keep given back as the port layer
 *                      does
 * After each operation: the free list holds num_free distinct descriptors,
 * none of them in flight, free + in flight = ring size, and every buffer
 * of the pool is free or named by a descriptor's copy; at the end both
 * rings are drained and the whole pool is free. A broken invariant aborts.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vtnet_priv.h"

#define MAXQ 128
#define COUNT 1024

static struct mpops_region *r;
static struct mpops_pktpool *pool;
static void *base;
static char rundir[64] = "/tmp/mpops-fuzz-vq-XXXXXX";
static mpops_off_t vsh[2], ring[2], extra[2], infl[2];
static struct vtnet_port port;
static struct vtnet_port_shared psh;
static struct mpops_port_queue_stats st[2];
static int bad_free;

/* vtnet.h makes every user link the driver; the harness has its rings only. */
const struct mpops_ops_impl mpops_impl_mpops_port_drv_vtnet;

static void logged(enum mpops_log_level level, const char *line, void *arg)
{
	(void)level;
	(void)arg;
	if (strstr(line, "mpops_pkt_free"))
		bad_free = 1;	/* the driver freed something it does not hold */
	if (getenv("VF_DEBUG"))
		fprintf(stderr, "%s\n", line);
}

static int notify(struct vtnet_port *p, struct vtnet_slot *slot, uint16_t vq)
{
	(void)p;
	(void)slot;
	(void)vq;
	return 0;
}

static void bye(void)
{
	if (pool)
		mpops_pktpool_close(pool);
	if (r)
		mpops_region_detach(r);
	/* What the primary's region leaves in its runtime directory. */
	for (int i = 0; i < 2; i++) {
		char f[128];

		snprintf(f, sizeof(f), "%s/fuzzvq.%s", rundir, i ? "lock" : "sock");
		unlink(f);
	}
	rmdir(rundir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct mpops_region_opts ro = { .sz = sizeof(ro), .size = 8u << 20 };
	struct mpops_pktpool_opts po = { .sz = sizeof(po), .count = COUNT, .cache_size = 64 };
	mpops_off_t pool_off;

	(void)argc;
	(void)argv;
	mpops_log_set(logged, NULL);
	if (!mkdtemp(rundir))
		abort();
	ro.runtime_dir = rundir;
	if (mpops_region_create("fuzzvq", &ro, &r) < 0 ||
	    mpops_pktpool_create(r, "fuzzvq.pool", &po, &pool_off) < 0 ||
	    mpops_pktpool_open(r, pool_off, &pool) < 0)
		abort();
	atexit(bye);
	base = mpops_region_base(r);
	for (int i = 0; i < 2; i++)
		if (mpops_alloc(r, sizeof(struct vq_shared), 64, "vq", &vsh[i]) < 0 ||
		    mpops_alloc(r, vq_ring_bytes(MAXQ), 16384, "vq.ring", &ring[i]) < 0 ||
		    mpops_alloc(r, sizeof(struct vq_extra) * MAXQ, 64, "vq.x", &extra[i]) < 0 ||
		    mpops_alloc(r, 2 * MAXQ, 64, "vq.in", &infl[i]) < 0)
			abort();
	port.magic = VTNET_MAGIC;
	port.r = r;
	port.base = base;
	port.sh = &psh;
	port.pool = pool;
	/* The marks a port would give queue_setup: here every buffer is simply
	 * allocated (no owner), so the harness's own accounting decides. */
	port.qp[0] = (struct vtnet_qp){ .p = &port, .qp = 0, .notify = notify,
					.marks = { .own = MPOPS_PKT_F_ALLOCATED,
						   .ring_rx = MPOPS_PKT_F_ALLOCATED,
						   .ring_tx = MPOPS_PKT_F_ALLOCATED } };
	return 0;
}

/* ---- the invariants ----------------------------------------------------- */

static unsigned chain_bufs(struct mpops_pkt *m)
{
	unsigned n = 0;

	for (; m && n <= COUNT; m = mpops_pkt_next(base, m))
		n++;
	return n;
}

/* Descriptors in flight marked in @used; @return buffers they name. */
static unsigned inflight(struct vq *q, uint8_t *used, unsigned *ndesc)
{
	unsigned bufs = 0;

	*ndesc = 0;
	for (uint16_t d = 0; d < q->sh->size; d++) {
		uint16_t c = d;

		if (!q->x[d].cookie)
			continue;
		bufs += chain_bufs(mpops_ptr(base, q->x[d].cookie));
		for (unsigned s = 0; s < q->sh->size && c < q->sh->size; s++) {
			if (used[c])
				abort();	/* two chains share a descriptor */
			used[c] = 1;
			(*ndesc)++;
			c = q->x[c].next;
		}
	}
	return bufs;
}

static void check(void)
{
	unsigned bufs = 0;

	for (int i = 0; i < 2; i++) {
		struct vq *q = &port.vq[i];
		uint8_t used[MAXQ] = { 0 };
		unsigned nd;
		uint16_t d = q->sh->free_head;

		bufs += inflight(q, used, &nd);
		if (q->sh->num_free > q->sh->size || nd + q->sh->num_free != q->sh->size)
			abort();
		for (unsigned k = 0; k < q->sh->num_free; k++) {
			if (d >= q->sh->size || used[d])
				abort();	/* a free descriptor in flight, or twice */
			used[d] = 1;
			d = q->x[d].next & q->mask;
		}
	}
	if (bad_free || bufs + mpops_pktpool_avail(pool) != mpops_pktpool_count(pool))
		abort();
}

/* ---- the device ---------------------------------------------------------- */

static uint16_t dev_avail[2];

static void dev_write(const uint8_t *a, size_t n)
{
	struct vq *q = &port.vq[(a[0] % 6) / 3];
	int part = a[0] % 3;
	size_t sz = part == 0 ? 16u * q->sh->size : part == 1 ? 6u + 2u * q->sh->size
							  : 6u + 8u * q->sh->size;
	char *at = part == 0 ? (char *)q->desc : part == 1 ? (char *)q->avail : (char *)q->used;
	size_t off = (size_t)(a[1] | a[2] << 8) % sz, len = (size_t)(a[3] % 8) + 1;

	if (len > n - 4)
		len = n - 4;
	if (off + len > sz)
		len = sz - off;
	memcpy(at + off, a + 4, len);
}

static void dev_use(int qi, unsigned k, uint32_t len)
{
	struct vq *q = &port.vq[qi];

	for (unsigned i = 0; i < k && dev_avail[qi] != q->avail->idx; i++) {
		uint16_t head = q->avail->ring[dev_avail[qi]++ & q->mask] & q->mask;
		struct vring_desc *d = &q->desc[head];
		uint16_t u = q->used->idx;

		struct mpops_pkt *b = q->x[head].cookie ? mpops_ptr(base, q->x[head].cookie) : NULL;

		/* Into packet buffers only: the device reaches nothing else (the
		 * driver's metadata and copies are not in its memory table). */
		if (!qi && b && d->addr >= b->buf_iova && d->addr - b->buf_iova <= b->buf_len - 12u) {
			uint16_t one = 1;

			memcpy((char *)base + d->addr + 10, &one, 2);	/* num_buffers */
		}
		q->used->ring[u & q->mask] = (struct vring_used_elem){ head, qi ? 0 : len };
		q->used->idx = (uint16_t)(u + 1);
	}
}

/* ---- the driver ---------------------------------------------------------- */

static void rx(unsigned n)
{
	struct mpops_pkt *m[40];
	int got = vtnet_rx(&port.qp[0], m, (uint16_t)n);

	for (int i = 0; i < got; i++) {
		/* What the application may read must be inside the buffers. */
		for (struct mpops_pkt *s = m[i]; s; s = mpops_pkt_next(base, s))
			if ((uint32_t)s->data_off + s->data_len > s->buf_len)
				abort();
		mpops_pkt_free(pool, m[i]);
	}
}

static void tx(unsigned n, int chain)
{
	struct mpops_pkt *m[80];
	unsigned k = chain ? 2 * n : n;
	int sent;

	if (!n || mpops_pkt_alloc_bulk(pool, m, k) < 0)
		return;
	for (unsigned i = 0; i < n; i++) {
		struct mpops_pkt *a = m[chain ? 2 * i : i];

		a->data_len = 60;
		a->pkt_len = 60;
		if (chain) {
			struct mpops_pkt *b = m[2 * i + 1];

			b->data_len = 60;
			a->pkt_len = 120;
			a->nb_segs = 2;
			a->next = mpops_off(base, b);
		}
		m[i] = a;
	}
	sent = vtnet_tx(&port.qp[0], m, (uint16_t)n);
	for (unsigned i = (unsigned)sent; i < n; i++)
		mpops_pkt_free(pool, m[i]);
}

/* As a new owner: repair, then give back what the copies no longer name. */
static void repair(int qi)
{
	struct vq *q = &port.vq[qi];
	struct mpops_pkt *before[MAXQ], *keep[MAXQ];
	struct vq_repair_report rep;
	unsigned nb = 0;

	for (uint16_t d = 0; d < q->sh->size; d++)
		if (q->x[d].cookie)
			before[nb++] = mpops_ptr(base, q->x[d].cookie);
	if (vq_repair(q, qi && (psh.features & BIT64(VIRTIO_F_IN_ORDER)), keep, &rep) < 0)
		return;
	for (unsigned i = 0; i < nb; i++) {
		unsigned k = 0;

		while (k < rep.kept && keep[k] != before[i])
			k++;
		if (k == rep.kept)
			mpops_pkt_free(pool, before[i]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint16_t qsize;

	if (size < 1)
		return 0;
	qsize = (uint16_t)(16u << ((data[0] >> 3) & 3));
	psh.features = BIT64(VIRTIO_F_VERSION_1);
	if (data[0] & 1)
		psh.features |= BIT64(VIRTIO_NET_F_MRG_RXBUF);
	if (data[0] & 2)
		psh.features |= BIT64(VIRTIO_F_IN_ORDER);
	if (data[0] & 4)
		psh.features |= BIT64(VIRTIO_RING_F_EVENT_IDX);
	psh.hdr_size = 12;
	bad_free = 0;
	for (int i = 0; i < 2; i++) {
		memset(&st[i], 0, sizeof(st[i]));
		vq_init(&port.vq[i], base, mpops_ptr(base, vsh[i]), (uint16_t)i, qsize, ring[i],
			extra[i], infl[i], 0, 0, "fuzz");
		port.vq[i].st = &st[i];
		dev_avail[i] = 0;
	}
	vq_rx_fill(&port.vq[0], pool, psh.hdr_size, 0);
	for (size_t i = 1; i < size;) {
		const uint8_t *a = data + i + 1;
		size_t left = size - i - 1;

		switch (data[i] % 5) {
		case 0:
			if (left < 5) {
				i = size;
				break;
			}
			dev_write(a, left);
			i += 1 + 4 + (size_t)(a[3] % 8) + 1;
			break;
		case 1:
			if (left >= 3)
				dev_use(a[0] & 1, a[1] % 9u, a[2] * 16u);
			i += 4;
			break;
		case 2:
			if (left >= 1)
				rx(a[0] % 40u);
			i += 2;
			break;
		case 3:
			if (left >= 2)
				tx(a[0] % 40u, a[1] & 1);
			i += 3;
			break;
		default:
			if (left >= 1)
				repair(a[0] & 1);
			i += 2;
			break;
		}
		check();
	}
	for (int i = 0; i < 2; i++)
		vq_drain(&port.vq[i], pool);
	if (bad_free || mpops_pktpool_avail(pool) != mpops_pktpool_count(pool))
		abort();
	return 0;
}
