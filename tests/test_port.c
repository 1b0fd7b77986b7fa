/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The port layer (lib/port.c) with the "loop" test driver (port_loop.c):
 * what the library does for every driver (claims, the fast path and its
 * rebuild at each epoch, start/stop, loss and return, the per-process slot
 * and its fds from the primary, dead owners), in this process and in
 * port-peer, a secondary of another executable.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "demo_ops.h"
#include "helpers.h"
#include "port_loop.h"

static struct mpops_region *r;

static void setup(void)
{
	logcap_start();
	rundir_make();
	r = primary_make("pt");
	cr_assert_not_null(r);
}

/* Processes of the primary-exit test, ended by pid here if still running. */
static struct peer exit_prim, exit_sec[2];

static void teardown(void)
{
	peers_end_all();
	peer_end(&exit_prim, SIGKILL);
	for (int i = 0; i < 2; i++)
		peer_end(&exit_sec[i], SIGTERM);
	if (r)
		mpops_region_detach(r);
	rundir_remove();
}

TestSuite(port, .init = setup, .fini = teardown, .timeout = 60);

static struct mpops_port *port_up(uint16_t nb_qp)
{
	struct mpops_port *p;

	cr_assert_eq(loop_port_create(r, "lp", nb_qp, &p), 0);
	cr_assert_eq(mpops_port_start(p), 0);
	return p;
}

Test(port, packets_go_round_and_are_counted_in_the_shared_counters)
{
	struct mpops_port *p = port_up(2);
	struct mpops_port_queue_stats rx, tx;
	struct mpops_port_info in;
	struct mpops_port_link l;

	cr_assert_eq(mpops_port_claim(p, 1), 0);
	cr_assert_eq(loop_traffic(p, 1, 1000), 1000);
	cr_assert_eq(mpops_port_stats_get(p, 1, &rx, &tx), 0);
	cr_assert_eq(rx.packets, 1000);
	cr_assert_eq(tx.packets, 1000);
	cr_assert_eq(tx.bytes, 64000);
	cr_assert_gt(tx.kicks, 0);
	/* Every kick went through this process's own copy of the eventfd. */
	cr_assert_eq(loop_kicks(p), tx.kicks);
	cr_assert_eq(mpops_port_stats_get(p, 0, &rx, &tx), 0);
	cr_assert_eq(rx.packets + tx.packets, 0);
	cr_assert_eq(mpops_port_stats_get(p, 2, &rx, &tx), -ERANGE);
	cr_assert_eq(mpops_port_info_get(p, &in), 0);
	cr_assert_str_eq(in.driver, "loop");
	cr_assert_eq(in.owner_pid[1], getpid());
	cr_assert_eq(in.owner_pid[0], 0);
	cr_assert_eq(in.started, 1);
	cr_assert_eq(mpops_port_link_get(p, &l), 0);
	cr_assert_eq(l.up, 1);
	cr_assert_eq(mpops_port_close(p), 0);
	cr_assert_eq(mpops_audit(r, NULL, NULL, 0), 0);
}

Test(port, bursts_on_queue_pairs_not_claimed_here_are_eperm_logged_once)
{
	struct mpops_port *p = port_up(2);
	struct mpops_pkt *pk[4];

	cr_assert_eq(mpops_rx_burst(p, 0, pk, 4), -EPERM);
	cr_assert_eq(mpops_tx_burst(p, 1, pk, 4), -EPERM);
	cr_assert_eq(mpops_rx_burst(p, 5, pk, 4), -EPERM);		/* past nb_qp */
	cr_assert_eq(mpops_rx_burst(p, 60000, pk, 4), -EPERM);	/* past the table */
	cr_assert_eq(logcap_count("which this process has not claimed"), 1);
	cr_assert_eq(mpops_port_claim(p, 2), -ERANGE);
	cr_assert_eq(logcap_count("port lp: no queue pair 2 (the port has 2)"), 1);
	cr_assert_eq(mpops_port_claim(p, 0), 0);
	cr_assert_eq(mpops_port_claim(p, 0), 0);	/* ours already */
	cr_assert_eq(mpops_port_release(p, 0), 0);
	cr_assert_eq(mpops_port_release(p, 0), -EPERM);
	cr_assert_eq(mpops_rx_burst(p, 0, pk, 4), -EPERM);
	mpops_port_close(p);
}

Test(port, stop_makes_bursts_return_zero_and_start_rebuilds_each_fast_path_once)
{
	struct mpops_port *p = port_up(1);
	struct loop_shared *ls = loop_shared(p);
	struct mpops_pkt *pk[4];
	uint32_t setups, attaches, detaches;

	cr_assert_eq(mpops_port_claim(p, 0), 0);
	cr_assert_eq(loop_traffic(p, 0, 100), 100);
	cr_assert_eq(mpops_port_stop(p), 0);
	cr_assert_eq(ls->stops, 1);
	cr_assert_eq(mpops_pkt_alloc_bulk(mpops_port_pool(p), pk, 4), 0);
	cr_assert_eq(mpops_tx_burst(p, 0, pk, 4), 0);
	cr_assert_eq(mpops_rx_burst(p, 0, pk, 4), 0);
	setups = ls->queue_setups;
	attaches = ls->slot_attaches;
	detaches = ls->slot_detaches;
	cr_assert_eq(mpops_port_stop(p), 0);	/* stopped already: nothing */
	cr_assert_eq(ls->stops, 1);
	cr_assert_eq(mpops_port_start(p), 0);
	/* The first burst rebuilds: a new slot (the old one detached), a new
	 * queue context; the next ones do not. */
	cr_assert_eq(mpops_tx_burst(p, 0, pk, 4), 4);
	cr_assert_eq(ls->queue_setups, setups + 1);
	cr_assert_eq(ls->slot_attaches, attaches + 1);
	cr_assert_eq(ls->slot_detaches, detaches + 1);
	cr_assert_eq(mpops_rx_burst(p, 0, pk, 4), 4);
	cr_assert_eq(ls->queue_setups, setups + 1);
	mpops_pkt_free_bulk(mpops_port_pool(p), pk, 4);
	cr_assert_eq(loop_traffic(p, 0, 100), 100);
	mpops_port_close(p);
	cr_assert_eq(ls->slot_attaches, ls->slot_detaches);
}

Test(port, a_lost_device_stops_bursts_and_its_return_resumes_them_with_the_claim_held)
{
	struct mpops_port *p = port_up(1);
	struct mpops_port_link l;
	struct mpops_pkt *pk[4];

	cr_assert_eq(mpops_port_claim(p, 0), 0);
	cr_assert_eq(mpops_port_lost(p, "test unplugged it: link down, bursts stopped"), 0);
	cr_assert_eq(logcap_count("port lp: test unplugged it: link down, bursts stopped"), 1);
	cr_assert_eq(mpops_port_lost(p, "again"), -EALREADY);
	mpops_port_link_get(p, &l);
	cr_assert_eq(l.up, 0);
	cr_assert_eq(mpops_rx_burst(p, 0, pk, 4), 0);
	cr_assert_eq(mpops_port_restored(p), 0);
	mpops_port_link_get(p, &l);
	cr_assert_eq(l.up, 1);
	cr_assert_eq(l.reconnects, 1);
	cr_assert_eq(l.changes, 3);	/* up, down, up */
	cr_assert_eq(loop_traffic(p, 0, 100), 100);
	mpops_port_close(p);
}

Test(port, a_port_stopped_while_its_device_was_lost_stays_stopped_when_the_device_returns)
{
	struct mpops_port *p = port_up(1);

	cr_assert_eq(mpops_port_claim(p, 0), 0);
	cr_assert_eq(mpops_port_lost(p, "test unplugged it"), 0);
	cr_assert_eq(mpops_port_stop(p), 0);
	cr_assert_eq(mpops_port_restored(p), -EALREADY);
	cr_assert_eq(mpops_port_is_started(p), 0);
	cr_assert_eq(mpops_port_start(p), 0);
	cr_assert_eq(mpops_port_restored(p), -EALREADY);	/* started, not lost */
	cr_assert_eq(loop_traffic(p, 0, 10), 10);
	mpops_port_close(p);
}

/* A driver that forgot an op. */
static int holey_open(struct mpops_port *port, void **priv)
{
	(void)port;
	*priv = NULL;
	return 0;
}
static const struct mpops_port_drv_ops holey_ops = { .open = holey_open };
MPOPS_OPS_IMPL(mpops_port_drv, holey, &holey_ops)

Test(port, a_driver_with_an_empty_op_or_no_driver_at_all_is_einval)
{
	struct mpops_port_conf c = { .sz = sizeof(c), .nb_qp = 1 };
	struct mpops_port *p = NULL;

	cr_assert_eq(mpops_port_create(r, "h", &mpops_impl_mpops_port_drv_holey, &c, &p), -EINVAL);
	cr_assert_eq(logcap_count("driver holey leaves op 'close' empty"), 1);
	cr_assert_null(p);
	cr_assert_eq(mpops_port_create(r, "h", &mpops_impl_demo_alpha, &c, &p), -EINVAL);
	cr_assert_eq(logcap_count("'alpha' is not a port driver"), 1);
	c.nb_qp = MPOPS_PORT_MAX_QP + 1;
	cr_assert_eq(mpops_port_create(r, "h", &mpops_impl_mpops_port_drv_loop, &c, &p), -EINVAL);
	c.nb_qp = 1;
	c.sz = 4;
	cr_assert_eq(mpops_port_create(r, "h", &mpops_impl_mpops_port_drv_loop, &c, &p), -EINVAL);
	cr_assert_eq(logcap_count("needs .sz = sizeof(struct mpops_port_conf)"), 1);
	c.sz = sizeof(c);
	cr_assert_eq(mpops_port_create(r, "a-name-longer-than-20", &mpops_impl_mpops_port_drv_loop, &c,
				       &p), -EINVAL);
	cr_assert_eq(mpops_port_open(r, "nosuch", &p), -ENOENT);
	cr_assert_eq(logcap_count("port nosuch: no such port in region 'pt'"), 1);
}

Test(port, names_are_unique_and_a_stale_handle_after_close_and_create_gets_nothing)
{
	struct mpops_port *p = port_up(1), *p2, *stale;
	struct mpops_pkt *pk[4];

	cr_assert_eq(loop_port_create(r, "lp", 1, &p2), -EEXIST);
	cr_assert_eq(mpops_port_open(r, "lp", &stale), 0);
	cr_assert_eq(mpops_port_claim(stale, 0), 0);
	cr_assert_eq(loop_traffic(stale, 0, 10), 10);
	cr_assert_eq(mpops_port_close(p), 0);
	/* Closed under it: bursts return nothing. */
	cr_assert_eq(mpops_rx_burst(stale, 0, pk, 4), 0);
	cr_assert_eq(mpops_port_open(r, "lp", &p2), -ENOENT);
	cr_assert_eq(logcap_count("the primary closed it"), 1);
	/* Made again: the stale handle's claim is gone, said once. */
	p = port_up(1);
	cr_assert_eq(mpops_rx_burst(stale, 0, pk, 4), -EPERM);
	cr_assert_eq(logcap_count("claim on queue pair 0 is gone"), 1);
	cr_assert_eq(mpops_port_close(stale), 0);
	cr_assert_eq(mpops_port_claim(p, 0), 0);
	cr_assert_eq(loop_traffic(p, 0, 10), 10);
	mpops_port_close(p);
}

/* ==== other processes =================================================== */

static void peer_go(struct peer *pe, const char *cmd, const char *qp, const char *count,
		    const char *ready)
{
	const char *args[] = { cmd, rundir_path(), "pt", "lp", qp, count, NULL };

	peer_begin(pe, "port-peer", args, ready);
}

static unsigned long long field(const char *out, const char *key)
{
	const char *s = strstr(out, key);

	cr_assert_not_null(s, "no %s in:\n%s", key, out);
	return strtoull(s + strlen(key), NULL, 10);
}

Test(port, a_secondary_gets_its_own_fd_from_the_primary_and_moves_packets)
{
	struct mpops_port *p = port_up(2);
	static struct peer pe;
	int st;

	peer_go(&pe, "loop", "1", "2000", NULL);
	st = peer_end(&pe, 0);
	cr_assert(EXITED_OK(st), "%s", pe.out);
	cr_assert_eq(field(pe.out, "received="), 2000);
	cr_assert_gt(field(pe.out, "tx_kicks="), 0);
	/* Its kicks, written to its own copy, reached the primary's eventfd. */
	cr_assert_eq(loop_kicks(p), field(pe.out, "tx_kicks="));
	cr_assert_geq(loop_shared(p)->exports, 1);
	mpops_port_close(p);
}

Test(port, a_secondary_keeps_its_claim_across_stop_start_and_a_lost_device)
{
	struct mpops_port *p = port_up(2);
	static struct peer pe;
	char line[32];
	int st;

	peer_go(&pe, "serve", "1", "500", "holding");
	for (int round = 1; round <= 5; round++) {
		if (round == 2 || round == 3) {
			cr_assert_eq(mpops_port_stop(p), 0);
			cr_assert_eq(mpops_port_start(p), 0);
		} else if (round == 4) {
			cr_assert_eq(mpops_port_lost(p, "test unplugged it: link down, bursts stopped"), 0);
			cr_assert_eq(mpops_port_restored(p), 0);
		} else if (round == 5) {
			cr_assert_eq(mpops_port_lost(p, "test unplugged it: link down, bursts stopped"), 0);
			cr_assert_eq(mpops_port_stop(p), 0);
			cr_assert_eq(mpops_port_start(p), 0);
		}
		kill(pe.pid, SIGUSR1);
		snprintf(line, sizeof(line), "round=%d received=", round);
		cr_assert_eq(peer_wait_line(pe.fd, line, pe.out, sizeof(pe.out), 10000), 0,
			     "no round %d:\n%s", round, pe.out);
		cr_assert_eq(field(pe.out, line), 500, "round %d:\n%s", round, pe.out);
	}
	st = peer_end(&pe, SIGTERM);
	cr_assert(EXITED_OK(st), "%s", pe.out);
	/* It rebuilt its slot after each of the four events: five in all. */
	cr_assert_geq(loop_shared(p)->exports, 5);
	mpops_port_close(p);
}

Test(port, a_claim_whose_owner_died_inside_a_burst_is_taken_over_and_stop_does_not_hang)
{
	struct mpops_port *p = port_up(1);
	static struct peer pe;
	char line[64];
	int st;

	peer_go(&pe, "spin", "0", "0", "spinning");
	usleep(50000);
	cr_assert_eq(mpops_port_claim(p, 0), -EBUSY);
	snprintf(line, sizeof(line), "queue pair 0 is claimed by pid %d", (int)pe.pid);
	cr_assert_eq(logcap_count(line), 1);
	st = peer_end(&pe, SIGKILL);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	/* Whatever the primary's channel thread did meanwhile, the claim is ours now. */
	cr_assert_eq(mpops_port_claim(p, 0), 0);
	cr_assert_eq(mpops_port_stop(p), 0);
	cr_assert_eq(mpops_port_start(p), 0);
	cr_assert_eq(loop_traffic(p, 0, 100), 100);
	mpops_port_close(p);
}

/* A primary of its own (port-peer primary, region "px") and two secondaries
 * bursting on its port; the primary is SIGKILLed. Each secondary must learn
 * of it without calling anything (its callback's time: the watcher waits for
 * the hang-up of the primary's connection, so this is scheduling delay, a few ms on a quiet
 * machine; the bound is 1 s so that a loaded one does not fail it), see
 * link down, bursts returning 0, the exit fd readable, and exit cleanly. */
Test(port, a_killed_primary_is_seen_by_every_secondary_at_once_with_link_down_and_bursts_at_zero)
{
	const char *prim[] = { "primary", rundir_path(), "px", "lp", "2", "0", NULL };
	const char *sec0[] = { "watch", rundir_path(), "px", "lp", "0", "0", NULL };
	const char *sec1[] = { "watch", rundir_path(), "px", "lp", "1", "0", NULL };
	struct timespec ts;
	long long killed;
	int st;

	peer_begin(&exit_prim, "port-peer", prim, "ready");
	peer_begin(&exit_sec[0], "port-peer", sec0, "watching");
	peer_begin(&exit_sec[1], "port-peer", sec1, "watching");
	usleep(20000);	/* both bursting */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	killed = ts.tv_sec * 1000000000LL + ts.tv_nsec;
	cr_assert_eq(kill(exit_prim.pid, SIGKILL), 0);
	st = peer_end(&exit_prim, 0);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	for (int i = 0; i < 2; i++) {
		struct peer *s = &exit_sec[i];
		long long after;

		st = peer_end(s, 0);
		cr_assert(EXITED_OK(st), "secondary %d, status %#x:\n%s", i, st, s->out);
		cr_assert(strstr(s->out, "link=0 rx=0 tx=0 fd=1 check=-107\n"), "%s", s->out);
		cr_assert(strstr(s->out, "log: region 'px': its primary (pid "), "%s", s->out);
		after = (long long)field(s->out, "gone_ns=") - killed;
		cr_assert(after >= 0 && after < 1000000000, "secondary %d learnt of it after %lld ns:\n%s",
			  i, after, s->out);
	}
}

Test(port, only_the_creator_starts_and_a_read_only_attach_cannot_claim)
{
	struct mpops_port *p = port_up(1);
	static struct peer pe;
	int st;

	peer_go(&pe, "start", "0", "0", NULL);
	st = peer_end(&pe, 0);
	cr_assert(EXITED_OK(st), "%s", pe.out);
	cr_assert(strstr(pe.out, "start=-1\n"), "%s", pe.out);
	cr_assert(strstr(pe.out, "only the primary that created the port starts it"), "%s", pe.out);
	peer_go(&pe, "ro", "0", "0", NULL);
	st = peer_end(&pe, 0);
	cr_assert(EXITED_OK(st), "%s", pe.out);
	cr_assert(strstr(pe.out, "claim=-30\n"), "%s", pe.out);
	cr_assert(strstr(pe.out, "a read-only attach cannot claim queues"), "%s", pe.out);
	mpops_port_close(p);
}

/* ==== packet buffers of processes that died ============================= */

static struct mpops_pktpool_census census(struct mpops_port *p)
{
	struct mpops_pktpool_census c = { .sz = sizeof(c) };

	cr_assert_eq(mpops_port_pool_census(p, &c), 0);
	return c;
}

Test(port, buffers_the_device_keeps_across_a_stop_stay_on_its_ring_and_are_not_recovered)
{
	struct mpops_port *p = port_up(2);
	struct mpops_pktpool_census before = census(p), c;
	struct mpops_pkt *pk[10], *loose;

	cr_assert_eq(mpops_pkt_alloc_bulk(mpops_port_pool(p), pk, 10), 0);
	cr_assert_eq(mpops_port_bufs_kept(p, 1, 0, pk, 10), 0);
	cr_assert_eq(mpops_port_bufs_kept(p, 2, 0, pk, 10), -EINVAL);	/* no queue pair 2 */
	loose = mpops_pkt_alloc(mpops_port_pool(p));
	cr_assert_not_null(loose);
	mpops_pkt_free(mpops_port_pool(p), loose);
	cr_assert_eq(mpops_port_bufs_kept(p, 0, 0, &loose, 1), -EINVAL);	/* not allocated */
	cr_assert_eq(mpops_port_stop(p), 0);
	c = census(p);
	cr_assert_eq(c.on_queue[1][0], 10, "on queue pair 1's rx ring: %u", c.on_queue[1][0]);
	cr_assert_eq(c.recovered, before.recovered);
	cr_assert_eq(c.free, c.total - 10);
	/* What the device gives back later is an ordinary buffer again. */
	cr_assert_eq(mpops_pkt_free_bulk(mpops_port_pool(p), pk, 10), 0);
	c = census(p);
	cr_assert_eq(c.free, c.total);
	cr_assert_eq(c.unaccounted, 0);
	mpops_port_close(p);
}

Test(port, a_dead_secondarys_cached_and_held_buffers_come_back_and_its_ring_keeps_its_own)
{
	struct mpops_port *p = port_up(2);
	struct mpops_pktpool_census before = census(p), c;
	static struct peer pe;
	int st;

	cr_assert_eq(before.free, before.total);
	peer_go(&pe, "hold", "1", "100", "holding");
	c = census(p);
	cr_assert_eq(c.on_queue[1][1], 100, "on the tx ring of queue pair 1: %u", c.on_queue[1][1]);
	cr_assert_eq(c.held, 24);
	cr_assert_eq(c.nprocs, 2);
	st = peer_end(&pe, SIGKILL);
	cr_assert(WIFSIGNALED(st), "%s", pe.out);
	c = pool_census_settled(r, 0, p);
	/* Its cache and the 24 it held are back; the 100 on the ring stay there. */
	cr_assert_eq(c.gone, 0);
	cr_assert_eq(c.held, 0);
	cr_assert_eq(c.on_rings, 100);
	cr_assert_eq(c.on_queue[1][1], 100);
	cr_assert_eq(c.free, c.total - 100, "free %u of %u", c.free, c.total);
	cr_assert_eq(c.unaccounted, 0);
	cr_assert_eq(c.twice, 0);
	cr_assert_eq(c.lost, 0);
	cr_assert_geq(c.reclaimed, 24 + 16);
	cr_assert_eq(logcap_count("is gone:"), 1);
	/* The next owner of the queue pair takes the ring's packets as they
	 * come (and frees them): everything is back. */
	cr_assert_eq(mpops_port_claim(p, 1), 0);
	cr_assert_eq(loop_traffic(p, 1, 10), 10);
	c = census(p);
	cr_assert_eq(c.on_rings, 0);
	cr_assert_eq(c.held, 0);
	cr_assert_eq(c.free, c.total);
	mpops_port_close(p);
}

Test(port, what_a_burst_cut_short_by_a_death_left_comes_back_at_stop)
{
	struct mpops_port *p = port_up(1);
	struct mpops_pktpool_census c;
	static struct peer pe;
	int st;

	/* The driver placed 10 of the 32 on its ring, then the process died:
	 * the other 22 are marked as the ring's and are on no ring. */
	peer_go(&pe, "dietx", "0", "10", NULL);
	st = peer_end(&pe, 0);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "%s", pe.out);
	cr_assert(strstr(pe.out, "dying after 10"), "%s", pe.out);
	c = pool_census_settled(r, 0, p);
	cr_assert_eq(c.held, 0);
	cr_assert_eq(c.on_queue[0][1], 32);
	cr_assert_eq(c.free, c.total - 32);
	/* Stop: the driver frees its ring's 10, the port layer gives back the 22. */
	cr_assert_eq(mpops_port_stop(p), 0);
	c = census(p);
	cr_assert_eq(c.free, c.total, "free %u of %u", c.free, c.total);
	cr_assert_eq(c.recovered, 22);
	cr_assert_eq(c.twice, 0);
	cr_assert_eq(c.lost, 0);
	cr_assert_eq(logcap_count("22 packet buffers were left between a burst and the device"), 1);
	cr_assert_eq(mpops_port_start(p), 0);
	cr_assert_eq(mpops_port_claim(p, 0), 0);
	cr_assert_eq(loop_traffic(p, 0, 100), 100);
	mpops_port_close(p);
}

/* The state letter of process @pid in /proc (R, S, T, ...), or 0. */
static char proc_state(pid_t pid)
{
	char path[64], buf[512], *s;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!(f = fopen(path, "r")))
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	s = strrchr(buf, ')');
	return s && s[1] == ' ' ? s[2] : 0;
}

/*
 * A process stopped (SIGSTOP) inside a burst: the port's stop waits 2 s for
 * it, says so in one line and goes on, keeping what that burst marked (its
 * process may go on with it). Once it is killed, the next owner of its
 * queue pair gets the buffers back and moves packets.
 */
Test(port, a_process_stopped_inside_a_burst_delays_a_stop_by_2_s_then_the_stop_goes_on)
{
	struct mpops_port *p = port_up(1);
	struct mpops_port_claim_info ci = { .sz = sizeof(ci) };
	struct mpops_pktpool_census c;
	struct timespec t0, t1;
	static struct peer pe;
	long ms;
	int st;

	peer_go(&pe, "stoptx", "0", "10", "stopping after 10");
	for (int i = 0; i < 200 && proc_state(pe.pid) != 'T'; i++)
		usleep(10000);
	cr_assert_eq(proc_state(pe.pid), 'T');
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(mpops_port_stop(p), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	cr_assert_geq(ms, 1900, "stop took %ld ms", ms);
	cr_assert_lt(ms, 5000, "stop took %ld ms", ms);
	cr_assert_eq(logcap_count("stayed inside a burst on queue pair 0 for 2 s: going on without it"), 1);
	/* Its claim is kept, and nothing was given back under its feet. */
	cr_assert_eq(mpops_port_claim_info(p, 0, &ci), 0);
	cr_assert_eq(ci.pid, pe.pid);
	cr_assert_eq(ci.in_burst, 1);
	c = census(p);
	cr_assert_eq(c.recovered, 0);
	cr_assert_eq(c.on_queue[0][1], 22, "tx marks %u", c.on_queue[0][1]);

	st = peer_end(&pe, SIGKILL);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "%s", pe.out);
	cr_assert_eq(mpops_port_start(p), 0);
	cr_assert_eq(mpops_port_claim(p, 0), 0);
	cr_assert_eq(loop_traffic(p, 0, 100), 100);
	cr_assert_eq(mpops_port_stop(p), 0);
	c = census(p);
	cr_assert_eq(c.free, c.total, "free %u of %u", c.free, c.total);
	cr_assert_eq(c.lost, 0);
	cr_assert_eq(c.twice, 0);
	mpops_port_close(p);
}

/* A queue pair's marks for a driver thread outside bursts are the ones its
 * queue_setup got; each queue pair and ring has its own. */
Test(port, queue_marks_are_what_queue_setup_gets_and_bad_arguments_are_refused)
{
	struct mpops_port *p = port_up(2);
	struct mpops_port_marks m0, m1, got;

	cr_assert_eq(mpops_port_claim(p, 1), 0);
	cr_assert_eq(loop_traffic(p, 1, 10), 10);
	got = loop_marks(p, 1);
	cr_assert_eq(mpops_port_queue_marks(p, 1, &m1), 0);
	cr_assert_eq(m1.own, got.own);
	cr_assert_eq(m1.ring_rx, got.ring_rx);
	cr_assert_eq(m1.ring_tx, got.ring_tx);
	cr_assert_eq(mpops_port_queue_marks(p, 0, &m0), 0);
	cr_assert_neq(m0.ring_rx, m1.ring_rx);
	cr_assert_neq(m0.ring_tx, m1.ring_tx);
	cr_assert_neq(m1.ring_rx, m1.ring_tx);
	cr_assert_neq(m1.own, m1.ring_rx);
	cr_assert_eq(mpops_port_queue_marks(p, 2, &m0), -ERANGE);
	cr_assert_eq(mpops_port_queue_marks(p, 0, NULL), -EINVAL);
	cr_assert_eq(mpops_port_queue_marks(NULL, 0, &m0), -EINVAL);
	mpops_port_close(p);
}

/*
 * The driver cannot build this process's state for a claimed queue pair
 * after the port restarted: bursts return 0 and say so once; once it can,
 * the same claim moves packets again.
 */
Test(port, a_fast_path_that_cannot_be_rebuilt_returns_0_says_so_once_and_recovers)
{
	struct mpops_port *p = port_up(1);
	struct mpops_pkt *pk[8];

	cr_assert_eq(mpops_port_claim(p, 0), 0);
	cr_assert_eq(loop_traffic(p, 0, 10), 10);
	cr_assert_eq(mpops_port_stop(p), 0);
	cr_assert_eq(mpops_port_start(p), 0);
	loop_setup_fail = -ENOMEM;
	for (int i = 0; i < 3; i++)
		cr_assert_eq(mpops_rx_burst(p, 0, pk, 8), 0);
	cr_assert_eq(mpops_tx_burst(p, 0, pk, 0), 0);
	loop_setup_fail = 0;
	cr_assert_eq(logcap_count("port lp: cannot rebuild this process's fast path for queue pair 0 (Cannot allocate memory): bursts return 0"), 1);
	cr_assert_eq(loop_traffic(p, 0, 100), 100);
	mpops_port_close(p);
}

/*
 * A primary on a kernel without membarrier(2) (a seccomp filter makes it
 * fail): it says so once, a secondary's traffic is not affected, and its
 * stop at close waits 20 ms instead of the barrier.
 */
Test(port, without_membarrier_the_primary_says_so_once_and_its_stop_waits_instead)
{
	const char *sec[] = { "loop", rundir_path(), "nm", "lp", "0", "100", NULL };
	char peer_path[512];
	const char *pri[] = { peer_path, "primary", rundir_path(), "nm", "lp", "1", "0", NULL };
	static struct peer pp;
	char out[4096];
	int st;

	snprintf(peer_path, sizeof(peer_path), "%s", helper_path("port-peer"));
	peer_begin(&pp, "no-membarrier", pri, "ready");
	st = peer_run("port-peer", sec, out, sizeof(out));
	cr_assert(EXITED_OK(st), "%s", out);
	cr_assert(strstr(out, "received=100"), "%s", out);
	st = peer_end(&pp, SIGTERM);
	cr_assert(EXITED_OK(st), "%s", pp.out);
	cr_assert(strstr(pp.out, "membarrier(REGISTER_GLOBAL_EXPEDITED) failed (Function not implemented)"),
		  "%s", pp.out);
	cr_assert(strstr(pp.out, "membarrier(2) is not available (Function not implemented): stopping a port waits 20 ms instead"),
		  "%s", pp.out);
	cr_assert_null(strstr(strstr(pp.out, "is not available") + 1, "is not available"), "%s", pp.out);
}

Test(port, the_next_owner_of_a_burst_cut_short_by_a_death_repairs_it_at_takeover)
{
	struct mpops_port *p = port_up(1);
	struct mpops_pktpool_census c;
	static struct peer pe;
	pid_t dead;
	int st;

	/* The driver placed 10 of the 32, then the process died. */
	peer_go(&pe, "dietx", "0", "10", NULL);
	dead = pe.pid;
	st = peer_end(&pe, 0);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "%s", pe.out);
	c = pool_census_settled(r, 0, p);
	cr_assert_eq(c.on_queue[0][1], 32);
	/* Whether the primary released the claim first or not, the next owner
	 * is told whose it was, and gives back the 22 on no ring. */
	cr_assert_eq(mpops_port_claim(p, 0), 0);
	cr_assert_eq(loop_shared(p)->takeovers, 1);
	cr_assert_eq(loop_shared(p)->takeover_pid, dead);
	cr_assert_eq(loop_shared(p)->takeover_recovered, 22);
	c = census(p);
	cr_assert_eq(c.on_queue[0][1], 10);
	cr_assert_eq(c.free, c.total - 10, "free %u of %u", c.free, c.total);
	cr_assert_eq(logcap_count("22 tx buffers were left between a burst and the device by its dead owner"), 1);
	/* A claim that was not a dead one's is no takeover. */
	cr_assert_eq(mpops_port_release(p, 0), 0);
	cr_assert_eq(mpops_port_claim(p, 0), 0);
	cr_assert_eq(loop_shared(p)->takeovers, 1);
	cr_assert_eq(loop_traffic(p, 0, 100), 100);
	mpops_port_close(p);
}
