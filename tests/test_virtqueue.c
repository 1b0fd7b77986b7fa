/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The virtqueue alone (drivers/virtio/virtqueue.c), as Linux's tools/virtio
 * tests vring_virtqueue: a ring in a region, buffers from a pool in it,
 * and this test playing the device. No port, no transport.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/virtio_net.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "virtqueue.h"

#define SIZE 64

static struct mpops_region *r;
static struct mpops_pktpool *pool;
static void *base;
static struct vq q;

static void setup(void)
{
	struct mpops_pktpool_opts po = { .sz = sizeof(po), .count = 256 };
	mpops_off_t pool_off, sh, ring, cookie, inflight, scratch;

	logcap_start();
	rundir_make();
	r = primary_make("vq");
	cr_assert_not_null(r);
	base = mpops_region_base(r);
	cr_assert_eq(mpops_pktpool_create(r, "vq.pool", &po, &pool_off), 0);
	cr_assert_eq(mpops_pktpool_open(r, pool_off, &pool), 0);
	cr_assert_eq(mpops_alloc(r, sizeof(struct vq_shared), 64, "vq", &sh), 0);
	cr_assert_eq(mpops_alloc(r, vq_ring_bytes(SIZE), 4096, "vq.ring", &ring), 0);
	cr_assert_eq(mpops_alloc(r, 16 * SIZE, 64, "vq.extra", &cookie), 0);
	cr_assert_eq(mpops_alloc(r, 2 * SIZE, 64, "vq.inflight", &inflight), 0);
	cr_assert_eq(mpops_alloc(r, 256, 256, "vq.scratch", &scratch), 0);
	vq_init(&q, base, mpops_ptr(base, sh), 3, SIZE, ring, cookie, inflight, scratch, scratch,
		"t");
}

static void teardown(void)
{
	mpops_pktpool_close(pool);
	mpops_region_detach(r);
	rundir_remove();
}

TestSuite(virtqueue, .init = setup, .fini = teardown, .timeout = 30);

/* ---- the device's side ---------------------------------------------------- */

static uint16_t dev_avail;	/* the device's next avail entry */

/* Take the next available head, or -1. */
static int dev_take(void)
{
	uint16_t idx = __atomic_load_n(&q.avail->idx, __ATOMIC_ACQUIRE);

	if (idx == dev_avail)
		return -1;
	return q.avail->ring[dev_avail++ & q.mask];
}

static void dev_use(uint32_t id, uint32_t len)
{
	uint16_t u = q.used->idx;

	q.used->ring[u & q.mask] = (struct vring_used_elem){ id, len };
	__atomic_store_n(&q.used->idx, (uint16_t)(u + 1), __ATOMIC_RELEASE);
}

/* ---- tests ------------------------------------------------------------------ */

Test(virtqueue, layout_is_the_legacy_one_in_a_single_block)
{
	cr_assert_eq(q.sh->size, SIZE);
	cr_assert_eq(q.sh->index, 3);
	cr_assert_eq((char *)q.avail - (char *)q.desc, 16 * SIZE);
	/* used at the next 4 KiB after descriptors and avail */
	cr_assert_eq(((char *)q.used - (char *)q.desc) % 4096, 0);
	cr_assert_gt((char *)q.used - (char *)q.desc, 16 * SIZE + 2 * (3 + SIZE) - 1);
	cr_assert_eq(q.sh->num_free, SIZE);
	cr_assert_eq(q.avail->flags, VRING_AVAIL_F_NO_INTERRUPT);
	cr_assert_eq(q.st, &q.sh->stats);
}

Test(virtqueue, rx_fill_posts_every_descriptor_and_drain_returns_every_buffer)
{
	unsigned before = mpops_pktpool_avail(pool);
	int head;

	cr_assert_eq(vq_rx_fill(&q, pool, 12, 0), SIZE);
	cr_assert_eq(q.sh->num_free, 0);
	cr_assert_eq(q.avail->idx, SIZE);
	cr_assert_eq(mpops_pktpool_avail(pool), before - SIZE);
	/* Each descriptor: device-writable, starts 12 bytes before the data. */
	for (int i = 0; i < SIZE; i++) {
		struct mpops_pkt *m;

		cr_assert_geq(head = dev_take(), 0);
		cr_assert_neq(q.x[head].cookie, 0);
		m = mpops_ptr(base, q.x[head].cookie);
		cr_assert_eq(q.desc[head].flags, VRING_DESC_F_WRITE);
		cr_assert_eq(q.desc[head].addr, m->buf_iova + m->data_off - 12);
		cr_assert_eq(q.desc[head].len, (uint32_t)(m->buf_len - m->data_off + 12));
	}
	cr_assert_eq(dev_take(), -1);
	/* Nothing free: nothing more posted. */
	cr_assert_eq(vq_rx_fill(&q, pool, 12, 0), 0);
	vq_drain(&q, pool);
	cr_assert_eq(mpops_pktpool_avail(pool), before);
	cr_assert_eq(q.sh->num_free, SIZE);
	cr_assert_eq(q.avail->idx, 0);
}

Test(virtqueue, rx_fill_posts_what_the_pool_has)
{
	struct mpops_pkt *hold[256];
	unsigned n = mpops_pktpool_avail(pool) - 10, k = 0;

	while (k < n && (hold[k] = mpops_pkt_alloc(pool)))
		k++;
	cr_assert_eq(k, n);
	cr_assert_eq(vq_rx_fill(&q, pool, 12, 0), 10);
	cr_assert_eq(q.sh->num_free, SIZE - 10);
	cr_assert_eq(q.avail->idx, 10);
	mpops_pkt_free_bulk(pool, hold, k);
	vq_drain(&q, pool);
}

Test(virtqueue, free_list_gives_descriptors_back_in_the_order_they_were_returned)
{
	uint16_t d[5];

	for (int i = 0; i < 5; i++)
		d[i] = vq_desc_get(&q);
	cr_assert_eq(d[0], 0);
	cr_assert_eq(d[4], 4);
	cr_assert_eq(q.sh->num_free, SIZE - 5);
	/* Returned 2, 0, 4: the list hands out 5..63 first, then 2, 0, 4. */
	vq_desc_put(&q, d[2]);
	vq_desc_put(&q, d[0]);
	vq_desc_put(&q, d[4]);
	for (int i = 5; i < SIZE; i++)
		cr_assert_eq(vq_desc_get(&q), i);
	cr_assert_eq(vq_desc_get(&q), 2);
	cr_assert_eq(vq_desc_get(&q), 0);
	cr_assert_eq(vq_desc_get(&q), 4);
	cr_assert_eq(q.sh->num_free, 0);
}

Test(virtqueue, a_kick_is_wanted_as_the_device_says)
{
	/* Without event idx: the used ring's NO_NOTIFY flag. */
	cr_assert_eq(vq_need_kick(&q, 0, 0, 1), 1);
	q.used->flags = VRING_USED_F_NO_NOTIFY;
	cr_assert_eq(vq_need_kick(&q, 0, 0, 1), 0);
	/* With event idx: only when avail moved past avail_event. */
	*vq_avail_event(&q) = 5;
	cr_assert_eq(vq_need_kick(&q, 1, 0, 5), 0);	/* 0 -> 5 did not pass entry 5 */
	cr_assert_eq(vq_need_kick(&q, 1, 5, 6), 1);	/* 5 -> 6 did */
	cr_assert_eq(vq_need_kick(&q, 1, 6, 9), 0);
	*vq_avail_event(&q) = 0xffff;			/* wrap-around */
	cr_assert_eq(vq_need_kick(&q, 1, 0xfff0, 2), 1);
}

/* The device on a thread: serves one control command, acks it @ack. */
struct ctrl_dev {
	uint8_t ack;
	uint8_t cls, cmd;
	uint16_t data;
	int served;
	int ack_writable;	/* the third descriptor was device-writable */
	uint32_t id_offset;	/* returns head + this as the used id (a device gone wrong) */
};

static void *ctrl_dev_run(void *arg)
{
	struct ctrl_dev *cd = arg;
	int head = -1;

	for (int i = 0; i < 2000 && (head = dev_take()) < 0; i++)
		usleep(1000);
	if (head < 0)
		return NULL;
	/* header (2 bytes), data, ack: three descriptors */
	{
		struct vring_desc *h = &q.desc[head], *d = &q.desc[h->next], *a = &q.desc[d->next];
		uint8_t *hb = (uint8_t *)base + h->addr, *db = (uint8_t *)base + d->addr;

		cd->cls = hb[0];
		cd->cmd = hb[1];
		memcpy(&cd->data, db, 2);
		*((uint8_t *)base + a->addr) = cd->ack;
		cd->ack_writable = !!(a->flags & VRING_DESC_F_WRITE);
	}
	cd->served = 1;
	dev_use((uint32_t)head + cd->id_offset, 1);
	return NULL;
}

static int notified;
static int count_notify(void *arg)
{
	(void)arg;
	notified++;
	return 0;
}

Test(virtqueue, a_control_command_is_sent_acked_and_its_descriptors_come_back)
{
	struct ctrl_dev cd = { .ack = VIRTIO_NET_OK };
	uint16_t pairs = 3;
	pthread_t t;

	/* The scratch area's device address is its offset here. */
	cr_assert_eq(pthread_create(&t, NULL, ctrl_dev_run, &cd), 0);
	cr_assert_eq(vq_ctrl_send(&q, 0, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &pairs,
				  2, count_notify, NULL), 0);
	pthread_join(t, NULL);
	cr_assert_eq(cd.served, 1);
	cr_assert_eq(cd.cls, VIRTIO_NET_CTRL_MQ);
	cr_assert_eq(cd.cmd, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET);
	cr_assert_eq(cd.data, 3);
	cr_assert_eq(cd.ack_writable, 1);
	cr_assert_eq(notified, 1);
	cr_assert_eq(q.st->kicks, 1);
	cr_assert_eq(q.st->packets, 1);
	cr_assert_eq(q.sh->num_free, SIZE);	/* all three back */
}

Test(virtqueue, a_refused_control_command_is_eio_and_a_silent_device_etimedout)
{
	struct ctrl_dev cd = { .ack = VIRTIO_NET_ERR };
	uint16_t pairs = 2;
	pthread_t t;

	cr_assert_eq(pthread_create(&t, NULL, ctrl_dev_run, &cd), 0);
	cr_assert_eq(vq_ctrl_send(&q, 0, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &pairs,
				  2, count_notify, NULL), -EIO);
	pthread_join(t, NULL);
	cr_assert_eq(logcap_count("vtnet t: the device rejected control command class 4 cmd 0 (ack 1)"),
		     1);
	/* Nobody answers. */
	cr_assert_eq(vq_ctrl_send(&q, 0, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &pairs,
				  2, count_notify, NULL), -ETIMEDOUT);
	cr_assert_eq(logcap_count("did not complete control command 4/0 within 2 s"), 1);
	/* Too long, or no room: refused before anything is posted. */
	cr_assert_eq(vq_ctrl_send(&q, 0, 4, 0, &pairs, 200, count_notify, NULL), -EINVAL);
}

Test(virtqueue, a_control_command_answered_under_another_id_is_counted_and_its_descriptors_come_back)
{
	struct ctrl_dev cd = { .ack = VIRTIO_NET_OK, .id_offset = 7 };
	uint16_t pairs = 2;
	pthread_t t;

	cr_assert_eq(pthread_create(&t, NULL, ctrl_dev_run, &cd), 0);
	cr_assert_eq(vq_ctrl_send(&q, 0, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &pairs,
				  2, count_notify, NULL), 0);
	pthread_join(t, NULL);
	cr_assert_eq(q.st->errors, 1);
	cr_assert_eq(logcap_count("vtnet t: queue 3: control queue: device returned another descriptor (7, 0)"),
		     1);
	/* The driver knows which three it posted: they are free again. */
	cr_assert_eq(q.sh->num_free, SIZE);
}
