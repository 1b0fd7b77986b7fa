/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The kill loop: a secondary mpops-fwd on queue pair 0 is SIGKILLed at
 * random points, 200 times, while another one forwards on queue pair 1,
 * through mpops-vhost in loopback behind an mpops-fwd primary. Each kill
 * lands outside a burst: the test stops the process (SIGSTOP) at a random
 * moment, reads its claim, and lets it run a little longer while it is
 * inside one (the driver's ring state after a death inside a burst is the
 * driver's to repair; a port stop gives back the buffers such a death
 * leaves, see test_port). Anywhere else is fair: attaching, inside the
 * allocator or the pool's lock, between bursts, while freeing.
 *
 * Afterwards nothing is lost: every buffer of the pool is free or on a
 * ring, each ring holds what its descriptors say, the free count is the
 * one before the loop less what sits on the tx rings, and both queue
 * pairs move packets. The test reads all of that through a read-only
 * attach of its own.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mpops/vtnet.h>

#include "helpers.h"

#define FWD "../app/mpops-fwd"
#define VHOST "../drivers/virtio/backend/mpops-vhost"
#define KILLS 200

/* Every process the test starts: ended by pid at teardown if still running. */
static struct peer backend, primary, s0, s1;
static struct mpops_region *ro;
static struct mpops_port *port;
static char sock[128];

static void setup(void)
{
	rundir_make();
	snprintf(sock, sizeof(sock), "%s/vhost.sock", rundir_path());
	backend.pid = primary.pid = s0.pid = s1.pid = -1;
}

static void teardown(void)
{
	if (port)
		mpops_port_close(port);
	if (ro)
		mpops_region_detach(ro);
	peer_end(&s0, SIGKILL);
	peer_end(&s1, SIGKILL);
	peer_end(&primary, SIGKILL);
	peer_end(&backend, SIGKILL);
	rundir_remove();
}

TestSuite(kill_loop, .init = setup, .fini = teardown, .timeout = 150);

/* mpops-fwd on queue pair @qp (for @duration seconds, NULL: until a
 * signal); with @ready, wait until it forwards. */
static void secondary_start(struct peer *p, const char *qp, const char *duration, int ready)
{
	const char *a[] = { "--proc-type", "secondary", "--runtime-dir", rundir_path(),
			    "--region", "kl", "--queues-claim", qp, "--tx-first", "--json",
			    duration ? "--duration" : NULL, duration, NULL };

	peer_begin(p, FWD, a, ready ? "forwarding" : NULL);
}

/* Buffers each virtqueue's descriptors hold, and their sum. */
static unsigned in_use(unsigned use[4])
{
	unsigned sum = 0;

	for (uint16_t v = 0; v < 4; v++) {
		struct vtnet_vq_info vi;

		cr_assert_eq(vtnet_vq_info_get(port, v, &vi), 0);
		use[v] = (unsigned)(vi.size - vi.num_free);
		sum += use[v];
	}
	return sum;
}

/*
 * Stop @p at this moment; if it is inside a burst on queue pair 0, let it
 * go on for a few microseconds and stop it again; then SIGKILL it.
 * @return how many times it was found inside a burst.
 */
static unsigned kill_outside_burst(struct peer *p)
{
	struct mpops_port_claim_info ci = { .sz = sizeof(ci) };
	unsigned inside = 0;
	int st;

	for (;;) {
		kill(p->pid, SIGSTOP);
		cr_assert_eq(waitpid(p->pid, &st, WUNTRACED), p->pid);
		cr_assert(WIFSTOPPED(st), "mpops-fwd ended by itself (status %#x):\n%s", st, p->out);
		cr_assert_eq(mpops_port_claim_info(port, 0, &ci), 0);
		if (ci.pid != p->pid || !ci.in_burst || inside == 1000)
			break;
		inside++;
		kill(p->pid, SIGCONT);
		usleep((useconds_t)(rand() % 50));
	}
	cr_assert_lt(inside, 1000, "always inside a burst");
	st = peer_end(p, SIGKILL);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status %#x:\n%s", st, p->out);
	return inside;
}

static unsigned long long qp_rx(uint16_t qp)
{
	struct mpops_port_queue_stats rx;

	cr_assert_eq(mpops_port_stats_get(port, qp, &rx, NULL), 0);
	return rx.packets;
}

Test(kill_loop, a_secondary_killed_200_times_loses_no_buffer_and_both_queue_pairs_move)
{
	const char *be[] = { "--socket", sock, "--queues", "2", "--kick-driven", "--quiet", NULL };
	const char *pr[] = { "--proc-type", "primary", "--runtime-dir", rundir_path(),
			     "--region", "kl", "--vhost-socket", sock, "--queues", "2",
			     "--queues-claim", "none", "--json", NULL };
	struct mpops_attach_opts ao = { .sz = sizeof(ao), .runtime_dir = rundir_path(),
					.flags = MPOPS_ATTACH_F_READONLY };
	struct mpops_pktpool_census before, after;
	unsigned use0[4], use[4], sum0, sum, inside = 0;
	unsigned long long rx1, seed = (unsigned long long)time(NULL);
	struct stat stt;
	struct timespec t0, t1;
	int st;

	srand((unsigned)seed);
	cr_log_info("seed %llu", seed);
	peer_begin(&backend, VHOST, be, NULL);
	for (int i = 0; i < 500 && stat(sock, &stt) < 0; i++)
		usleep(10000);
	peer_begin(&primary, FWD, pr, "forwarding");
	cr_assert_eq(mpops_region_attach("kl", &ao, &ro), 0);
	cr_assert_eq(mpops_port_open(ro, "port0", &port), 0);

	/* Before: the primary alone, its rx rings filled at start. */
	before = pool_census_settled(ro, 0, port);
	sum0 = in_use(use0);
	cr_assert_eq(before.free + before.on_rings, before.total);
	cr_assert_eq(before.on_rings, sum0);

	secondary_start(&s1, "1", NULL, 1);
	usleep(300000);
	rx1 = qp_rx(1);
	cr_assert_gt(rx1, 0, "queue pair 1 moves nothing");

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int k = 0; k < KILLS; k++) {
		secondary_start(&s0, "0", NULL, 0);
		usleep((useconds_t)(rand() % 120000));
		inside += kill_outside_burst(&s0);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cr_log_info("%d kills in %.1f s; found inside a burst and let go on %u times", KILLS,
		    (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9, inside);

	/* Queue pair 1 went on all along; a new secondary moves packets on 0. */
	cr_assert_gt(qp_rx(1), rx1, "queue pair 1 stopped");
	secondary_start(&s0, "0", "1", 0);
	st = peer_end(&s0, 0);
	cr_assert(EXITED_OK(st), "status %#x:\n%s", st, s0.out);
	cr_assert_gt(json_num(strstr(s0.out, "\"queues\": [{\"qp\": 0"), "rx_packets"), 0,
		     "queue pair 0 moves nothing after the loop:\n%s", s0.out);
	st = peer_end(&s1, SIGTERM);
	cr_assert(EXITED_OK(st), "status %#x:\n%s", st, s1.out);

	/* After: every buffer is free or on a ring, each ring holds what its
	 * descriptors say, nothing is lost. */
	after = pool_census_settled(ro, 0, port);
	sum = in_use(use);
	cr_log_info("pool %u: free %u before, %u after; on rings %u before, %u after (vq 0-3: %u %u %u %u); given back %llu from %d processes; lost %llu",
		    after.total, before.free, after.free, sum0, sum, use[0], use[1], use[2], use[3],
		    (unsigned long long)after.reclaimed, KILLS, (unsigned long long)after.lost);
	cr_assert_eq(after.lost, 0);
	cr_assert_eq(after.held, 0);
	cr_assert_eq(after.gone, 0);
	cr_assert_eq(after.handed_off, 0);
	cr_assert_eq(after.unaccounted, 0);
	cr_assert_eq(after.twice, 0);
	cr_assert_eq(after.on_rings, sum, "on rings %u, descriptors hold %u", after.on_rings, sum);
	cr_assert_eq(after.on_rings_anyq, 0);
	for (int v = 0; v < 4; v++)
		cr_assert_eq(after.on_queue[v / 2][v % 2], use[v], "vq %d: %u marked, %u held", v,
			     after.on_queue[v / 2][v % 2], use[v]);
	/* The brief's count: what is not free now sits on the rings. */
	cr_assert_eq(after.free, before.free - (sum - sum0));
	cr_assert_gt(after.reclaimed, 0);

	mpops_port_close(port);
	port = NULL;
	mpops_region_detach(ro);
	ro = NULL;
	st = peer_end(&primary, SIGTERM);
	cr_assert(EXITED_OK(st), "status %#x:\n%s", st, primary.out);
	cr_assert(strstr(primary.out, "\"audit\": 0"), "%s", primary.out);
}
