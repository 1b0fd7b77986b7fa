/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The vtnet driver against a scripted vhost-user backend (fake_vhost.c):
 * negotiation, a backend that misbehaves in the protocol, a device that
 * writes bad used-ring entries (this test writes them itself, through its
 * mapping of the rings, as a device would), link loss and reconnection.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "fake_vhost.h"
#include "vhost_user.h"
#include "helpers.h"
#include "vtnet_priv.h"

static struct mpops_region *r;
static struct fake_vhost fv;
static char sock[100];

static void setup(void)
{
	struct mpops_region_opts o = { .sz = sizeof(o), .size = 64u << 20 };

	logcap_start();
	o.runtime_dir = rundir_make();
	cr_assert_eq(mpops_region_create("vt", &o, &r), 0);
	snprintf(sock, sizeof(sock), "%s/vhost.sock", rundir_path());
	memset(&fv, 0, sizeof(fv));
	snprintf(fv.path, sizeof(fv.path), "%s", sock);
}

static void teardown(void)
{
	if (fv.thr)
		fake_vhost_stop(&fv);
	if (r)
		mpops_region_detach(r);
	rundir_remove();
}

TestSuite(vtnet, .init = setup, .fini = teardown, .timeout = 60);

static struct vtnet_conf conf(void)
{
	struct vtnet_conf c = {
		.sz = sizeof(c), .vhost_path = sock, .pool_size = 1024,
		.ring_size = 64, .connect_timeout_ms = 2000,
	};

	return c;
}

static struct mpops_port *started(struct vtnet_conf c)
{
	struct mpops_port *p = NULL;

	cr_assert_eq(fake_vhost_start(&fv), 0);
	cr_assert_eq(vtnet_port_create(r, "p0", &c, &p), 0);
	cr_assert_eq(mpops_port_start(p), 0);
	return p;
}

Test(vtnet, negotiates_what_both_sides_have)
{
	struct mpops_port *p = started(conf());
	struct vtnet_info in;
	struct mpops_port_link l;

	cr_assert_eq(vtnet_info_get(p, &in), 0);
	/* The fake offers VERSION_1 and MRG_RXBUF; MAC, STATUS, CTRL_VQ are emulated. */
	cr_assert(in.features & BIT64(VIRTIO_F_VERSION_1));
	cr_assert(in.features & BIT64(VIRTIO_NET_F_MRG_RXBUF));
	cr_assert(in.features & BIT64(VIRTIO_NET_F_MAC));
	cr_assert_not(in.features & BIT64(VIRTIO_RING_F_EVENT_IDX));	/* not offered */
	cr_assert_not(in.features & BIT64(VIRTIO_F_IN_ORDER));
	cr_assert_eq(in.hdr_size, 12);
	cr_assert_str_eq(in.transport, "vtpci/user");
	/* The backend is told only what it offered, not the emulated bits. */
	cr_assert_eq(fv.acked_features & BIT64(VIRTIO_NET_F_MAC), 0);
	cr_assert(fv.acked_features & BIT64(VIRTIO_F_VERSION_1));
	cr_assert_eq(fv.requests[VHOST_USER_SET_MEM_TABLE], 1);
	cr_assert_eq(fv.requests[VHOST_USER_SET_VRING_KICK], 2);
	cr_assert_eq(mpops_port_link_get(p, &l), 0);
	cr_assert_eq(l.up, 1);
	cr_assert_eq(logcap_count("vtnet p0: negotiated "), 1);
	cr_assert_eq(mpops_port_close(p), 0);
	cr_assert_eq(fv.requests[VHOST_USER_GET_VRING_BASE], 2);	/* rings taken back */
}

Test(vtnet, mergeable_off_is_negotiated_away)
{
	struct vtnet_conf c = conf();
	struct mpops_port *p;
	struct vtnet_info in;

	c.mergeable = -1;
	p = started(c);
	vtnet_info_get(p, &in);
	cr_assert_not(in.features & BIT64(VIRTIO_NET_F_MRG_RXBUF));
	cr_assert_eq(fv.acked_features & BIT64(VIRTIO_NET_F_MRG_RXBUF), 0);
	mpops_port_close(p);
}

Test(vtnet, no_backend_is_enoent)
{
	struct vtnet_conf c = conf();
	struct mpops_port *p;

	c.connect_timeout_ms = 100;
	cr_assert_eq(vtnet_port_create(r, "p0", &c, &p), -ENOENT);
	cr_assert_eq(logcap_count("no vhost-user backend listens on"), 1);
}

Test(vtnet, garbage_reply_is_ebadmsg)
{
	struct vtnet_conf c = conf();
	struct mpops_port *p;

	fv.mode = FAKE_GARBAGE;
	cr_assert_eq(fake_vhost_start(&fv), 0);
	cr_assert_eq(vtnet_port_create(r, "p0", &c, &p), -EBADMSG);
	cr_assert_eq(logcap_count("vhost-user backend sent a malformed reply to GET_FEATURES"), 1);
	/* Nothing was left behind: the name can be used again. */
	fv.mode = FAKE_OK;
	cr_assert_eq(vtnet_port_create(r, "p0", &c, &p), 0);
	mpops_port_close(p);
}

Test(vtnet, backend_closing_mid_negotiation_is_econnreset)
{
	struct vtnet_conf c = conf();
	struct mpops_port *p;

	fv.mode = FAKE_CLOSE_EARLY;
	cr_assert_eq(fake_vhost_start(&fv), 0);
	cr_assert_eq(vtnet_port_create(r, "p0", &c, &p), -ECONNRESET);
	cr_assert_eq(logcap_count("vhost-user backend closed the connection during GET_FEATURES"), 1);
}

Test(vtnet, bad_conf_is_einval)
{
	struct vtnet_conf c = conf();
	struct mpops_port *p;

	c.ring_size = 100;
	cr_assert_eq(vtnet_port_create(r, "p0", &c, &p), -EINVAL);
	c = conf();
	c.nb_qp = VTNET_MAX_QP + 1;
	cr_assert_eq(vtnet_port_create(r, "p0", &c, &p), -EINVAL);
	c = conf();
	c.transport = "pci-express";
	cr_assert_eq(vtnet_port_create(r, "p0", &c, &p), -EINVAL);
	cr_assert_eq(logcap_count("unknown transport 'pci-express'"), 1);
	c.transport = "pci-modern";
	cr_assert_eq(vtnet_port_create(r, "p0", &c, &p), -EINVAL);
	cr_assert_eq(logcap_count("transport pci-modern needs .pci_addr"), 1);
	/* PCI devices reach memory by physical address: this region has none.
	 * (Nothing on this machine's own PCI bus is opened: the check comes first.) */
	c.pci_addr = "00:01.0";
	cr_assert_eq(vtnet_port_create(r, "p0", &c, &p), -EINVAL);
	cr_assert_eq(logcap_count("create region 'vt' with MPOPS_REGION_F_PHYS"), 1);
	c.pci_addr = "not-an-address";
	cr_assert_eq(vtnet_port_create(r, "p0", &c, &p), -EINVAL);
	cr_assert_eq(logcap_count("needs .pci_addr as dddd:bb:dd.f, not 'not-an-address'"), 1);
	c = conf();
	c.nb_qp = 2;	/* the fake has no MQ */
	cr_assert_eq(fake_vhost_start(&fv), 0);
	cr_assert_eq(vtnet_port_create(r, "p0", &c, &p), -ENOTSUP);
	cr_assert_eq(logcap_count("the device offers no multiqueue"), 1);
}

/* A caller built against an older, shorter struct vtnet_conf: what lies past
 * its sz is not read (here: garbage where the newer fields would be). */
Test(vtnet, conf_fields_past_sz_are_not_read)
{
	struct vtnet_conf c = conf();
	struct mpops_port *p;

	c.sz = offsetof(struct vtnet_conf, transport);
	c.transport = "garbage";
	c.pci_addr = "garbage";
	p = started(c);
	cr_assert_eq(logcap_count("unknown transport"), 0);
	cr_assert_eq(mpops_port_close(p), 0);
}

/* Play the device: put a used entry in the rx ring. */
static void dev_used(struct vq *q, uint32_t id, uint32_t len)
{
	uint16_t u = q->used->idx;

	q->used->ring[u & q->mask].id = id;
	q->used->ring[u & q->mask].len = len;
	__atomic_store_n(&q->used->idx, (uint16_t)(u + 1), __ATOMIC_RELEASE);
}

/* Play the device: a good 60-byte packet of @byte in the next rx buffer,
 * and check that it arrives whole. */
static void dev_rx_good(struct mpops_port *p, struct vq *rxq, uint8_t byte)
{
	struct vtnet_port *vp = vtnet_of(p);
	uint16_t head = rxq->avail->ring[rxq->used->idx & rxq->mask];
	struct mpops_pkt *m = mpops_ptr(vp->base, rxq->x[head].cookie), *pk[8];
	struct virtio_net_hdr_mrg_rxbuf *vh = (void *)((char *)mpops_pkt_data(vp->base, m) - 12);

	vh->num_buffers = 1;
	memset(mpops_pkt_data(vp->base, m), byte, 60);
	dev_used(rxq, head, 12 + 60);
	cr_assert_eq(mpops_rx_burst(p, 0, pk, 8), 1);
	cr_assert_eq(pk[0]->pkt_len, 60);
	cr_assert_eq(((uint8_t *)mpops_pkt_data(vp->base, pk[0]))[0], byte);
	cr_assert_eq(((uint8_t *)mpops_pkt_data(vp->base, pk[0]))[59], byte);
	mpops_pkt_free(mpops_port_pool(p), pk[0]);
}

Test(vtnet, bad_used_entries_are_counted_and_dropped)
{
	struct mpops_port *p = started(conf());
	struct vtnet_port *vp = vtnet_of(p);
	struct vq *rxq = &vp->vq[0], *txq = &vp->vq[1];
	struct mpops_port_queue_stats rx, tx;
	struct mpops_pkt *pk[8];
	struct virtio_net_hdr_mrg_rxbuf *vh;
	struct mpops_pkt *m;
	uint16_t head;

	cr_assert_eq(mpops_port_claim(p, 0), 0);
	/* An id past the ring. */
	dev_used(rxq, 4000, 64);
	cr_assert_eq(mpops_rx_burst(p, 0, pk, 8), 0);
	/* Longer than the buffer the driver posted. */
	head = rxq->avail->ring[rxq->used->idx & rxq->mask];
	dev_used(rxq, head, 100000);
	cr_assert_eq(mpops_rx_burst(p, 0, pk, 8), 0);
	/* Shorter than a header. */
	head = rxq->avail->ring[rxq->used->idx & rxq->mask];
	dev_used(rxq, head, 3);
	cr_assert_eq(mpops_rx_burst(p, 0, pk, 8), 0);
	/* An impossible num_buffers. */
	head = rxq->avail->ring[rxq->used->idx & rxq->mask];
	m = mpops_ptr(vp->base, rxq->x[head].cookie);
	vh = (void *)((char *)mpops_pkt_data(vp->base, m) - 12);
	vh->num_buffers = 0;
	dev_used(rxq, head, 12 + 60);
	cr_assert_eq(mpops_rx_burst(p, 0, pk, 8), 0);
	/* A good one still arrives. */
	dev_rx_good(p, rxq, 0xab);
	/* The used index jumping beyond the ring. */
	__atomic_store_n(&rxq->used->idx, (uint16_t)(rxq->used->idx + 1000), __ATOMIC_RELEASE);
	cr_assert_eq(mpops_rx_burst(p, 0, pk, 8), 0);
	/* tx: an id the driver never posted. */
	dev_used(txq, 7, 0);
	cr_assert_geq(mpops_tx_burst(p, 0, pk, 0), 0);

	mpops_port_stats_get(p, 0, &rx, &tx);
	cr_assert_eq(rx.errors, 5, "rx errors %llu", (unsigned long long)rx.errors);
	cr_assert_eq(rx.drops, 3);
	cr_assert_eq(rx.packets, 1);
	cr_assert_eq(tx.errors, 1);
	cr_assert_eq(logcap_count("device returned a used id that is not in flight"), 2);
	cr_assert_eq(logcap_count("device wrote more than the buffer holds"), 1);
	cr_assert_eq(logcap_count("device wrote an impossible num_buffers"), 1);
	mpops_port_close(p);
}

/* The device may rewrite the descriptor table: a length it raised there
 * does not let a used entry claim more than the driver posted. */
/*
 * The backend is given the region's device part alone: the fd it gets
 * holds the rings and the buffers, and nothing of the header, the port's
 * state or the pool's bookkeeping. A backend that writes garbage over all
 * of it costs errors and packets, not the port: every buffer is accounted
 * for and, after a restart, the queues work.
 */
Test(vtnet, the_backend_gets_the_device_part_alone_and_its_garbage_is_survived)
{
	struct mpops_port *p = started(conf());
	struct vtnet_port *vp = vtnet_of(p);
	struct mpops_pktpool_census before = { .sz = sizeof(before) }, after = { .sz = sizeof(after) };
	struct mpops_port_queue_stats rx, tx;
	struct mpops_port_info in;
	struct mpops_region_dev d;
	struct mpops_pkt *pk[8];

	cr_assert_eq(mpops_region_dev(r, &d), 0);
	cr_assert_eq(fv.mem_nregions, 1);
	cr_assert_eq(fv.mem_gpa, d.off);
	cr_assert_eq(fv.mem_size, d.size);
	cr_assert_eq(fv.mem_uaddr, (uint64_t)(uintptr_t)d.addr);
	cr_assert_eq(fv.mem_mmap_off, 0);
	cr_assert_eq(fv.mem_fd_size, d.size, "the backend's fd holds %llu bytes",
		     (unsigned long long)fv.mem_fd_size);
	cr_assert_lt(d.size, mpops_region_size(r));
	cr_assert_not_null(fv.mem);
	cr_assert_eq(fv.mem_magic_seen, 0);
	/* Every ring and buffer the backend needs is inside what it got. */
	for (int i = 0; i < 2; i++) {
		cr_assert_geq((uintptr_t)vp->vq[i].desc, (uintptr_t)d.addr);
		cr_assert_lt((uintptr_t)vp->vq[i].used, (uintptr_t)d.addr + d.size);
	}
	cr_assert_eq(mpops_port_claim(p, 0), 0);
	cr_assert_eq(mpops_port_pool_census(p, &before), 0);
	cr_assert_eq(before.unaccounted, 0);

	/* The hostile device: garbage over everything it can write. */
	memset(fv.mem, 0x5a, fv.mem_len);
	cr_assert_eq(mpops_rx_burst(p, 0, pk, 8), 0);
	cr_assert_geq(mpops_tx_burst(p, 0, pk, 0), 0);
	mpops_port_stats_get(p, 0, &rx, &tx);
	cr_assert_geq(rx.errors, 1);
	/* What the processes share is untouched. */
	cr_assert_eq(mpops_port_info_get(p, &in), 0);
	cr_assert_str_eq(in.name, "p0");
	cr_assert_eq(in.nb_qp, 1);
	cr_assert_eq(in.owner_pid[0], getpid());
	cr_assert_eq(mpops_port_pool_census(p, &after), 0);
	cr_assert_eq(after.total, before.total);
	cr_assert_eq(after.unaccounted, 0);
	cr_assert_eq(after.free + after.held + after.on_rings + after.on_rings_anyq,
		     before.free + before.held + before.on_rings + before.on_rings_anyq);

	/* A restart rewrites the rings from the driver's own copies, with the
	 * claim still held, and the device's next good entry arrives. */
	cr_assert_eq(mpops_port_stop(p), 0);
	cr_assert_eq(mpops_port_start(p), 0);
	dev_rx_good(p, &vp->vq[0], 0xcd);
	cr_assert_eq(mpops_port_pool_census(p, &after), 0);
	cr_assert_eq(after.unaccounted, 0);
	cr_assert_eq(after.total, before.total);
	mpops_port_close(p);
}

Test(vtnet, a_descriptor_length_the_device_rewrote_is_not_believed)
{
	struct mpops_port *p = started(conf());
	struct vtnet_port *vp = vtnet_of(p);
	struct vq *rxq = &vp->vq[0];
	struct mpops_port_queue_stats rx;
	struct mpops_pkt *pk[8], *m;
	uint16_t head;

	cr_assert_eq(mpops_port_claim(p, 0), 0);
	head = rxq->avail->ring[rxq->used->idx & rxq->mask];
	m = mpops_ptr(vp->base, rxq->x[head].cookie);
	cr_assert_eq(rxq->desc[head].len, rxq->x[head].len);
	rxq->desc[head].len = 65535;
	dev_used(rxq, head, 60000);
	cr_assert_eq(mpops_rx_burst(p, 0, pk, 8), 0);
	mpops_port_stats_get(p, 0, &rx, NULL);
	cr_assert_eq(rx.errors, 1);
	cr_assert_eq(rx.drops, 1);
	cr_assert_eq(logcap_count("device wrote more than the buffer holds (60000, 2060)"), 1,
		     "posted %u", (unsigned)(m->buf_len - m->data_off + 12));
	mpops_port_close(p);
}

/* A next or flags the device rewrote in a tx chain hands out nothing still in
 * flight: the driver follows its own copy of the chain. */
Test(vtnet, a_tx_chain_the_device_relinked_frees_only_its_own_descriptors)
{
	struct mpops_port *p;
	struct vq *txq;
	struct mpops_pktpool *pool;
	struct mpops_pkt *pk[4];
	struct vtnet_vq_info vi;
	unsigned before;
	uint16_t h0, h1;

	fv.features &= ~BIT64(VIRTIO_F_IN_ORDER);
	p = started(conf());
	txq = &vtnet_of(p)->vq[1];
	pool = mpops_port_pool(p);
	cr_assert_eq(mpops_port_claim(p, 0), 0);
	before = mpops_pktpool_avail(pool);
	cr_assert_eq(mpops_pkt_alloc_bulk(pool, pk, 2), 0);
	for (int i = 0; i < 2; i++)
		pk[i]->data_len = 60;
	cr_assert_eq(mpops_tx_burst(p, 0, pk, 2), 2);
	h0 = txq->avail->ring[0];
	h1 = txq->avail->ring[1];
	/* The first head now claims to continue into the second, still in flight. */
	txq->desc[h0].flags = VRING_DESC_F_NEXT;
	txq->desc[h0].next = h1;
	dev_used(txq, h0, 0);
	cr_assert_eq(mpops_tx_burst(p, 0, pk, 0), 0);
	cr_assert_eq(vtnet_vq_info_get(p, 1, &vi), 0);
	cr_assert_eq(vi.num_free, vi.size - 1, "%u free", vi.num_free);
	cr_assert_eq(mpops_pktpool_avail(pool), before - 1);
	/* The second completes normally, once. */
	dev_used(txq, h1, 0);
	cr_assert_eq(mpops_tx_burst(p, 0, pk, 0), 0);
	cr_assert_eq(vtnet_vq_info_get(p, 1, &vi), 0);
	cr_assert_eq(vi.num_free, vi.size);
	cr_assert_eq(mpops_pktpool_avail(pool), before);
	mpops_port_close(p);
}

/* In order, a used entry may stand for a batch: tx counts, and checks the count. */
Test(vtnet, in_order_tx_completes_by_count_and_checks_it)
{
	struct mpops_port *p;
	struct vq *txq;
	struct mpops_port_queue_stats rx, tx;
	struct vtnet_info in;
	struct mpops_pktpool *pool;
	struct mpops_pkt *pk[5];
	unsigned before;
	uint16_t u;

	fv.features = BIT64(VIRTIO_F_VERSION_1) | BIT64(VIRTIO_NET_F_MRG_RXBUF) |
		      BIT64(VIRTIO_F_IN_ORDER) | (1ULL << VHOST_USER_F_PROTOCOL_FEATURES);
	p = started(conf());
	txq = &vtnet_of(p)->vq[1];
	pool = mpops_port_pool(p);
	cr_assert_eq(vtnet_info_get(p, &in), 0);
	cr_assert(in.features & BIT64(VIRTIO_F_IN_ORDER));
	cr_assert_eq(mpops_port_claim(p, 0), 0);
	before = mpops_pktpool_avail(pool);
	cr_assert_eq(mpops_pkt_alloc_bulk(pool, pk, 5), 0);
	for (int i = 0; i < 5; i++)
		pk[i]->data_len = 60;
	cr_assert_eq(mpops_tx_burst(p, 0, pk, 5), 5);
	cr_assert_eq(mpops_pktpool_avail(pool), before - 5);
	/* Three done, one used entry written (the third's): three freed. */
	u = txq->used->idx;
	txq->used->ring[(u + 2) & txq->mask].id = txq->avail->ring[(u + 2) & txq->mask];
	__atomic_store_n(&txq->used->idx, (uint16_t)(u + 3), __ATOMIC_RELEASE);
	cr_assert_eq(mpops_tx_burst(p, 0, pk, 0), 0);
	cr_assert_eq(mpops_pktpool_avail(pool), before - 2);
	/* Three more than the two in flight: the two freed, one error. */
	__atomic_store_n(&txq->used->idx, (uint16_t)(u + 6), __ATOMIC_RELEASE);
	cr_assert_eq(mpops_tx_burst(p, 0, pk, 0), 0);
	cr_assert_eq(mpops_pktpool_avail(pool), before);
	cr_assert_eq(mpops_port_stats_get(p, 0, &rx, &tx), 0);
	cr_assert_eq(tx.errors, 1);
	cr_assert_eq(tx.packets, 5);
	cr_assert_eq(logcap_count("device's used index counts more buffers than are in flight (3, 2)"), 1);
	mpops_port_close(p);
}

Test(vtnet, claims_are_exclusive_and_checked)
{
	struct mpops_port *p = started(conf());
	struct mpops_pkt *pk[1];

	cr_assert_eq(mpops_rx_burst(p, 0, pk, 1), -EPERM);
	cr_assert_eq(mpops_port_claim(p, 1), -ERANGE);
	cr_assert_eq(mpops_port_claim(p, 0), 0);
	cr_assert_eq(mpops_port_claim(p, 0), 0);	/* ours already */
	cr_assert_eq(mpops_port_release(p, 0), 0);
	cr_assert_eq(mpops_port_release(p, 0), -EPERM);
	mpops_port_close(p);
}

Test(vtnet, backend_gone_turns_the_link_down_and_reconnects)
{
	struct mpops_port *p = started(conf());
	struct mpops_pktpool_census c = { .sz = sizeof(c) };
	struct mpops_pkt *pk[4];
	struct mpops_port_link l;
	int i;

	cr_assert_eq(mpops_port_claim(p, 0), 0);
	signal(SIGPIPE, SIG_DFL);	/* a SIGPIPE would kill this test */
	fake_vhost_hangup(&fv);
	for (i = 0; i < 200; i++) {
		mpops_port_link_get(p, &l);
		if (!l.up)
			break;
		usleep(10000);
	}
	cr_assert_eq(l.up, 0);
	/* The monitor thread logs it; the link may read down a moment before. */
	cr_assert_eq(logcap_wait("disconnected: link down", 1, 2000), 1);
	/* Bursts return nothing while down, and send nothing. */
	cr_assert_eq(mpops_pkt_alloc_bulk(mpops_port_pool(p), pk, 4), 0);
	cr_assert_eq(mpops_tx_burst(p, 0, pk, 4), 0);
	cr_assert_eq(mpops_rx_burst(p, 0, pk, 4), 0);
	mpops_pkt_free_bulk(mpops_port_pool(p), pk, 4);
	/* The fake accepts the next connection: the link comes back. */
	for (i = 0; i < 300; i++) {
		mpops_port_link_get(p, &l);
		if (l.up)
			break;
		usleep(10000);
	}
	cr_assert_eq(l.up, 1);
	cr_assert_eq(l.reconnects, 2);
	cr_assert_eq(l.changes, 3);	/* up, down, up */
	cr_assert_eq(fv.sessions, 2);
	cr_assert_eq(fv.requests[VHOST_USER_SET_MEM_TABLE], 2);
	cr_assert_eq(logcap_count("reconnected: link up"), 1);
	/* The rx ring refilled for the new backend holds buffers marked as
	 * its own, as at start: none reads as held by this process. */
	cr_assert_eq(mpops_port_pool_census(p, &c), 0);
	cr_assert_eq(c.on_queue[0][0], 64, "rx ring %u, held %u", c.on_queue[0][0], c.held);
	cr_assert_eq(c.held, 0);
	cr_assert_eq(c.unaccounted, 0);
	mpops_port_close(p);
}

Test(vtnet, server_mode_waits_for_the_backend)
{
	struct vtnet_conf c = conf();
	struct mpops_port *p;
	struct mpops_port_link l;

	c.server = 1;
	fv.client = 1;
	cr_assert_eq(fake_vhost_start(&fv), 0);
	cr_assert_eq(vtnet_port_create(r, "p0", &c, &p), 0);
	cr_assert_eq(mpops_port_start(p), 0);
	mpops_port_link_get(p, &l);
	cr_assert_eq(l.up, 1);
	cr_assert_eq(logcap_count("waiting for a vhost-user backend to connect"), 1);
	mpops_port_close(p);
}

Test(vtnet, audit_is_clean_after_start_and_traffic)
{
	struct mpops_port *p = started(conf());
	struct mpops_pkt *pk[8];

	cr_assert_eq(mpops_port_claim(p, 0), 0);
	cr_assert_eq(mpops_pkt_alloc_bulk(mpops_port_pool(p), pk, 8), 0);
	for (int i = 0; i < 8; i++)
		pk[i]->data_len = (uint16_t)(pk[i]->pkt_len = 64);
	cr_assert_eq(mpops_tx_burst(p, 0, pk, 8), 8);
	cr_assert_eq(mpops_audit(r, NULL, NULL, 0), 0);
	mpops_port_close(p);
}

/* A region whose device addresses are physical (PCI) is no place for a
 * virtio-user port, whose backend maps the region at address 0. */
static long huge_got = -1;

static void setup_phys(void)
{
	struct mpops_region_opts o = {
		.sz = sizeof(o), .size = 8u << 20, .backing = MPOPS_BACKING_MEMFD_HUGETLB,
		.flags = MPOPS_REGION_F_PHYS,
	};

	/* Criterion ran the suite's setup first: give its region back (one
	 * region per process), keep its runtime directory. */
	if (r)
		mpops_region_detach(r);
	o.runtime_dir = rundir_path();
	r = NULL;
	huge_got = huge_take(4);
	if (mpops_region_create("vtphys", &o, &r) < 0)
		r = NULL;
}

static void teardown_phys(void)
{
	if (r)
		mpops_region_detach(r);
	r = NULL;
	huge_give(huge_got);
	huge_got = -1;
}

Test(vtnet, user_port_in_a_physical_region_is_einval, .init = setup_phys, .fini = teardown_phys)
{
	struct vtnet_conf c = conf();
	struct mpops_port *p = NULL;

	if (!r) {
		teardown_phys();	/* not run after a skip */
		cr_skip_test("no hugepages with physical addresses here (not root?)");
	}
	cr_assert_eq(vtnet_port_create(r, "p0", &c, &p), -EINVAL);
	cr_assert_null(p);
	cr_assert_eq(logcap_count("a virtio-user port gives the backend region offsets as addresses"), 1);
}

/*
 * Regression: a claimed queue pair cached a pointer to this process's slot,
 * which a stop + start freed (heap-use-after-free in the notify, and kicks
 * written to closed fds). Each round's kick must reach the backend's copy
 * of the tx kick fd, through the slot rebuilt at the new epoch.
 */
Test(vtnet, claim_held_across_stop_and_start_kicks_through_the_rebuilt_slot)
{
	struct vtnet_conf c = conf();
	struct mpops_port *p;
	struct mpops_pkt *pk[8];
	int kick[VTNET_MAX_VQ], n;
	eventfd_t v;

	c.nb_qp = 2;
	fv.queues = 2;
	p = started(c);
	/* The eventfd the backend reads queue 3's kicks from. */
	vu_kickfds(vtnet_of(p), kick, &n);
	cr_assert_eq(n, 4);
	cr_assert_eq(mpops_port_claim(p, 1), 0);
	for (int round = 0; round < 3; round++) {
		cr_assert_eq(mpops_pkt_alloc_bulk(mpops_port_pool(p), pk, 8), 0);
		for (int i = 0; i < 8; i++)
			pk[i]->data_len = (uint16_t)(pk[i]->pkt_len = 64);
		while (eventfd_read(kick[3], &v) == 0)
			;
		cr_assert_eq(mpops_tx_burst(p, 1, pk, 8), 8, "round %d", round);
		cr_assert_eq(eventfd_read(kick[3], &v), 0, "round %d: no kick arrived", round);
		cr_assert_eq(v, 1);
		cr_assert_eq(mpops_port_stop(p), 0);
		cr_assert_eq(mpops_port_start(p), 0);
	}
	mpops_port_close(p);
}

/* The control queue's device is ours (virtio-user emulates it), but it
 * checks commands as a device would: one that points outside the region is
 * dropped, counted, and still completed, so the queue goes on. */
Test(vtnet, a_malformed_control_command_is_dropped_counted_and_completed)
{
	struct mpops_port *p = started(conf());
	struct vtnet_port *vp = vtnet_of(p);
	uint16_t cvq = VTNET_CVQ(vp->sh->max_qp);
	struct vq *q = &vp->vq[cvq];
	uint16_t d, used;

	cr_assert_not_null(q->sh, "no control queue");
	used = q->used->idx;
	d = vq_desc_get(q);
	q->desc[d] = (struct vring_desc){ .addr = 1ULL << 40, .len = 2, .flags = 0 };
	q->avail->ring[q->sh->avail_idx & q->mask] = d;
	vq_avail_publish(q, (uint16_t)(q->sh->avail_idx + 1));
	cr_assert_eq(vtnet_notify(vp, cvq), 0);
	cr_assert_eq(q->used->idx, (uint16_t)(used + 1));
	cr_assert_eq(q->used->ring[used & q->mask].id, d);
	cr_assert_eq(q->st->errors, 1);
	cr_assert_eq(logcap_count("malformed control command (descriptor"), 1);
	mpops_port_close(p);
}
