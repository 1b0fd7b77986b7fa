/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A vtnet secondary killed at a known point inside the driver
 * (tests/vt_kill_peer.c): inside a tx burst, inside an rx refill, inside
 * the packet pool's allocator during an rx refill. Then another secondary
 * claims the queue pair: the port layer calls the driver's queue_takeover,
 * which rebuilds the queue pair from what is in flight. Afterwards the
 * queue moves packets (counted by the new owner and in the port's shared
 * counters), every buffer of the pool is accounted for (free, or on a ring
 * whose descriptors hold it), the rings are full again when idle, and the
 * repair counter says what was repaired.
 *
 * Processes: mpops-vhost (loopback, kick-driven), an mpops-fwd primary with
 * one queue pair it leaves alone, the peers; each ended here.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mpops/vtnet.h>

#include "helpers.h"

#define FWD "../app/mpops-fwd"
#define VHOST "../drivers/virtio/backend/mpops-vhost"
#define PEER "vt-kill-peer"
#define RING 256

static struct peer backend, primary, victim, heir;
static struct mpops_region *ro;
static struct mpops_port *port;
static char sock[128];

static void setup(void)
{
	rundir_make();
	snprintf(sock, sizeof(sock), "%s/vhost.sock", rundir_path());
	backend.pid = primary.pid = victim.pid = heir.pid = -1;
}

static void teardown(void)
{
	if (port)
		mpops_port_close(port);
	if (ro)
		mpops_region_detach(ro);
	peer_end(&victim, SIGKILL);
	peer_end(&heir, SIGKILL);
	peer_end(&primary, SIGKILL);
	peer_end(&backend, SIGKILL);
	rundir_remove();
}

TestSuite(vt_kill, .init = setup, .fini = teardown, .timeout = 60);

static void up(void)
{
	const char *be[] = { "--socket", sock, "--queues", "1", "--kick-driven", "--quiet", NULL };
	const char *pr[] = { "--proc-type", "primary", "--runtime-dir", rundir_path(),
			     "--region", "vk", "--vhost-socket", sock, "--queues", "1",
			     "--queues-claim", "none", NULL };
	struct mpops_attach_opts ao = { .sz = sizeof(ao), .runtime_dir = rundir_path(),
					.flags = MPOPS_ATTACH_F_READONLY };
	struct stat st;

	peer_begin(&backend, VHOST, be, NULL);
	for (int i = 0; i < 500 && stat(sock, &st) < 0; i++)
		usleep(10000);
	peer_begin(&primary, FWD, pr, "forwarding");
	cr_assert_eq(mpops_region_attach("vk", &ao, &ro), 0);
	cr_assert_eq(mpops_port_open(ro, "port0", &port), 0);
}

static struct vtnet_vq_info vq(uint16_t v)
{
	struct vtnet_vq_info vi;

	cr_assert_eq(vtnet_vq_info_get(port, v, &vi), 0);
	return vi;
}

/* Run the victim with @cmd @arg; it must die by SIGKILL at @where. */
static void victim_dies(const char *cmd, const char *arg, const char *where)
{
	const char *a[] = { rundir_path(), "vk", cmd, arg, NULL };
	char at[64];
	int st;

	peer_begin(&victim, PEER, a, NULL);
	st = peer_end(&victim, 0);
	snprintf(at, sizeof(at), "dying at %s", where);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status %#x:\n%s", st, victim.out);
	cr_assert(strstr(victim.out, at), "%s", victim.out);
}

/*
 * The heir claims queue pair 0 (taking it over), moves 1000 packets, and
 * leaves the queue idle. Checked: both its counts and the port's shared
 * counters, the rings full again, every buffer accounted for, and the rx
 * (@v 0) or tx (@v 1) ring's repair counter at least @repaired.
 */
static void heir_repairs_and_moves(uint16_t v, unsigned repaired)
{
	const char *a[] = { rundir_path(), "vk", "run", "1000", NULL };
	struct mpops_port_queue_stats rx0, tx0, rx1, tx1;
	struct mpops_pktpool_census c;
	struct vtnet_vq_info rxi, txi;
	int st;

	cr_assert_eq(mpops_port_stats_get(port, 0, &rx0, &tx0), 0);
	peer_begin(&heir, PEER, a, NULL);
	st = peer_end(&heir, 0);
	cr_assert(EXITED_OK(st), "status %#x:\n%s", st, heir.out);
	cr_assert(strstr(heir.out, "sent 1000 received 1000"), "%s", heir.out);
	cr_assert(strstr(heir.out, "died with work half done: repaired"), "%s", heir.out);
	cr_assert_eq(mpops_port_stats_get(port, 0, &rx1, &tx1), 0);
	cr_assert_eq(tx1.packets - tx0.packets, 1000);
	cr_assert_eq(rx1.packets - rx0.packets, 1000);

	rxi = vq(0);
	txi = vq(1);
	cr_assert_geq(v ? txi.repaired : rxi.repaired, repaired, "repaired rx %u tx %u",
		      rxi.repaired, txi.repaired);
	/* Idle: every rx descriptor posted, every tx one back. */
	cr_assert_eq(rxi.num_free, 0, "rx: %u free", rxi.num_free);
	cr_assert_eq(txi.num_free, RING, "tx: %u free", txi.num_free);
	cr_assert_eq((uint16_t)(rxi.avail_idx - rxi.last_used), RING);

	c = pool_census_settled(ro, 0, port);
	cr_assert_eq(c.lost, 0);
	cr_assert_eq(c.held, 0);
	cr_assert_eq(c.gone, 0);
	cr_assert_eq(c.unaccounted, 0);
	cr_assert_eq(c.twice, 0);
	cr_assert_eq(c.on_rings_anyq, 0);
	cr_assert_eq(c.on_queue[0][0], RING, "rx ring: %u buffers marked", c.on_queue[0][0]);
	cr_assert_eq(c.on_queue[0][1], 0, "tx ring: %u buffers marked", c.on_queue[0][1]);
	cr_assert_eq(c.on_rings, RING);
	cr_assert_eq(c.free, c.total - RING, "free %u of %u", c.free, c.total);
}

static void down(void)
{
	int st;

	mpops_port_close(port);
	port = NULL;
	mpops_region_detach(ro);
	ro = NULL;
	st = peer_end(&primary, SIGTERM);
	cr_assert(EXITED_OK(st), "status %#x:\n%s", st, primary.out);
}

Test(vt_kill, inside_a_tx_burst_the_half_placed_burst_comes_back_at_takeover)
{
	up();
	victim_dies("tx", "20", "tx packet");
	/* Dead: 20 descriptors taken, none published. */
	cr_assert_eq(vq(1).avail_idx, 0);
	heir_repairs_and_moves(1, 20);
	down();
}

Test(vt_kill, inside_an_rx_refill_the_taken_descriptor_and_buffers_come_back_at_takeover)
{
	up();
	/* Dead: 100 consumed, one of them taken again and not published. */
	victim_dies("refill", NULL, "rx refill");
	heir_repairs_and_moves(0, 1);
	down();
}

Test(vt_kill, inside_the_pool_allocator_during_an_rx_refill_lock_and_queue_are_repaired)
{
	up();
	/* Dead inside the pool's lock: 64 descriptors taken, none published. */
	victim_dies("alloc", NULL, "pktring.refill.copied");
	heir_repairs_and_moves(0, 64);
	down();
	/* The next locker of the pool (the primary noticing the death, or the
	 * heir) repaired the dead one's half-done refill of its cache. */
	cr_assert(strstr(heir.out, "died moving") || strstr(primary.out, "died moving"),
		  "no pool repair line:\n%s\n%s", heir.out, primary.out);
}
