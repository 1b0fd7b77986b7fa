/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Packet pool stress shared by test_pkt and mp-secondary: every process
 * allocates, fills, chains, checks and frees buffers of one pool, and
 * frees buffers the test process hands over through a small shared array
 * (mpops_pkt_handoff() there, mpops_pkt_adopt() here).
 */
#ifndef MPOPS_TEST_PKT_STRESS_H
#define MPOPS_TEST_PKT_STRESS_H

#include <stdint.h>

#include <mpops/mpops.h>

#define PKT_MP_POOL "pktmp"		/* root of the pool */
#define PKT_MP_XFER "pktmp.xfer"	/* root of struct pkt_xfer_shared */
#define PKT_XFER_SLOTS 64
#define PKT_XFER_SALT 0x55u		/* pattern of handed-over buffers */

/* Buffers the test process allocated, for the secondaries to free. */
struct pkt_xfer_shared {
	uint32_t done;		/* secondaries finished (atomic) */
	uint32_t pad;
	mpops_off_t slot[PKT_XFER_SLOTS]; /* an mpops_pkt, 0 = empty (atomic) */
};

struct pkt_stress_stats {
	unsigned bad;		/* corrupt data or metadata, failed frees */
	unsigned xfer;		/* handed-over buffers freed here */
	unsigned enobufs;	/* allocations that found the pool empty */
};

/* Fill a buffer with the pattern of (its index, @salt). */
void pkt_stress_fill(void *base, struct mpops_pkt *m, uint32_t salt);
/* Does it still hold that pattern? */
int pkt_stress_check(void *base, const struct mpops_pkt *m, uint32_t salt);
/* One round: allocate a burst, chain by three, fill, check, free. */
void pkt_stress_round(struct mpops_pktpool *p, uint32_t salt, unsigned round,
		      struct pkt_stress_stats *st);
/* Free what the test process handed over. */
void pkt_stress_take(struct mpops_pktpool *p, struct pkt_xfer_shared *x,
		     struct pkt_stress_stats *st);
/* Hand over buffers into empty slots (test process). */
void pkt_stress_give(struct mpops_pktpool *p, struct pkt_xfer_shared *x,
		     struct pkt_stress_stats *st);

#endif
