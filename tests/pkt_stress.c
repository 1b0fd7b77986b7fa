/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <sched.h>
#include <string.h>

#include "pkt_stress.h"

#define BURST 32

/* Bytes >= 0x80 and a tagged udata, so no word looks like an address to
 * the audit. */
static inline uint8_t pat(uint32_t idx, uint32_t salt, unsigned k)
{
	return (uint8_t)(0x80 | ((idx * 31 + salt + k) & 0x7f));
}

static inline uint64_t udata_of(uint32_t idx, uint32_t salt)
{
	return 0xa5a5000000000000ull | (uint64_t)(salt & 0xffffff) << 24 | idx;
}

void pkt_stress_fill(void *base, struct mpops_pkt *m, uint32_t salt)
{
	uint8_t *d = mpops_pkt_data(base, m);

	m->data_len = (uint16_t)(64 + m->index % 200);
	m->pkt_len = m->data_len;
	m->udata = udata_of(m->index, salt);
	for (unsigned k = 0; k < m->data_len; k++)
		d[k] = pat(m->index, salt, k);
}

int pkt_stress_check(void *base, const struct mpops_pkt *m, uint32_t salt)
{
	const uint8_t *d = mpops_pkt_data(base, m);

	if (!(m->flags & MPOPS_PKT_F_ALLOCATED) || m->udata != udata_of(m->index, salt) ||
	    m->data_len != 64 + m->index % 200)
		return 0;
	for (unsigned k = 0; k < m->data_len; k++)
		if (d[k] != pat(m->index, salt, k))
			return 0;
	return 1;
}

void pkt_stress_round(struct mpops_pktpool *p, uint32_t salt, unsigned round,
		      struct pkt_stress_stats *st)
{
	void *base = mpops_pktpool_base(p);
	struct mpops_pkt *m[BURST], *heads[BURST];
	unsigned n = 1 + round % BURST, nh = 0;
	int rc;

	rc = mpops_pkt_alloc_bulk(p, m, n);
	if (rc == -ENOBUFS) {
		st->enobufs++;
		return;
	}
	if (rc < 0) {
		st->bad++;
		return;
	}
	for (unsigned i = 0; i < n; i++) {
		if (m[i]->next || m[i]->nb_segs != 1 || m[i]->data_len ||
		    !(m[i]->flags & MPOPS_PKT_F_ALLOCATED))
			st->bad++;
		pkt_stress_fill(base, m[i], salt);
	}
	/* Chains of up to three segments. */
	for (unsigned i = 0; i < n; i += 3) {
		unsigned segs = n - i < 3 ? n - i : 3;

		for (unsigned s = 0; s + 1 < segs; s++)
			m[i + s]->next = mpops_off(base, m[i + s + 1]);
		m[i]->nb_segs = (uint16_t)segs;
		heads[nh++] = m[i];
	}
	if (round % 4 == 0)
		sched_yield(); /* let the others scribble meanwhile, if they can */
	for (unsigned i = 0; i < n; i++)
		if (!pkt_stress_check(base, m[i], salt))
			st->bad++;
	if (mpops_pkt_free_bulk(p, heads, nh) != 0)
		st->bad++;
}

void pkt_stress_take(struct mpops_pktpool *p, struct pkt_xfer_shared *x,
		     struct pkt_stress_stats *st)
{
	void *base = mpops_pktpool_base(p);

	for (unsigned s = 0; s < PKT_XFER_SLOTS; s++) {
		mpops_off_t off = __atomic_exchange_n(&x->slot[s], 0, __ATOMIC_ACQ_REL);
		struct mpops_pkt *m = mpops_ptr(base, off);

		if (!m)
			continue;
		if (!pkt_stress_check(base, m, PKT_XFER_SALT))
			st->bad++;
		if (mpops_pkt_adopt(p, &m, 1) != 0 || mpops_pkt_free(p, m) != 0)
			st->bad++;
		st->xfer++;
	}
}

void pkt_stress_give(struct mpops_pktpool *p, struct pkt_xfer_shared *x,
		     struct pkt_stress_stats *st)
{
	void *base = mpops_pktpool_base(p);

	for (unsigned s = 0; s < PKT_XFER_SLOTS; s++) {
		struct mpops_pkt *m;
		mpops_off_t want = 0;

		if (__atomic_load_n(&x->slot[s], __ATOMIC_ACQUIRE))
			continue;
		if (!(m = mpops_pkt_alloc(p))) {
			st->enobufs++;
			return;
		}
		pkt_stress_fill(base, m, PKT_XFER_SALT);
		/* Another process's from now on: not given back if we die. */
		if (mpops_pkt_handoff(&m, 1) != 0)
			st->bad++;
		/* Only this process fills slots: the slot is still empty. */
		if (!__atomic_compare_exchange_n(&x->slot[s], &want, mpops_off(base, m), 0,
						 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			st->bad++;
			mpops_pkt_free(p, m);
		}
		st->xfer++;
	}
}
