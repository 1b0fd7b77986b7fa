/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The AF_XDP driver end to end, each process its own executable, in a
 * network namespace of the test's own with a veth pair vxa <-> vxb (two
 * queues each, IPv6 off so that only the tests' frames travel). Our port
 * is on vxa; the far end on vxb is libxdp's own socket API (xsk-peer), the
 * kernel's stack, or DPDK's net_af_xdp in dpdk-testpmd. The namespace goes
 * at teardown, and every process with it.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mpops/afxdp.h>
#include <mpops/port_driver.h>

#include "afxdp_priv.h"
#include "helpers.h"

#define FWD "../app/mpops-fwd"
#define DUMP "../app/mpops-dump"
#define TESTPMD "/usr/bin/dpdk-testpmd"

extern char **environ;

static char ns[32];
static struct peer primary, sec[3], gen;

/* A shell command that must succeed. */
static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "'%s' failed: %#x", cmd, st);
}

static void setup(void)
{
	rundir_make();
	primary.pid = gen.pid = -1;
	for (int i = 0; i < 3; i++)
		sec[i].pid = -1;
	/* This test process and everything it starts live in the namespace. */
	netns_veth_enter(ns, sizeof(ns), "mpx");
}

static void teardown(void)
{
	peers_end_all();
	for (int i = 0; i < 3; i++)
		peer_end(&sec[i], SIGKILL);
	peer_end(&gen, SIGKILL);
	peer_end(&primary, SIGKILL);
	if (ns[0]) {
		char cmd[96];

		/* testpmd's runtime directory (its --file-prefix is ns). */
		snprintf(cmd, sizeof(cmd), "rm -rf /var/run/dpdk/%s", ns);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove /var/run/dpdk/%s\n", ns);
	}
	netns_remove(ns);
	rundir_remove();
}

TestSuite(afxdp, .init = setup, .fini = teardown, .timeout = 120);

/* The primary mpops-fwd on vxa with @args, claiming nothing itself. */
static void primary_start(const char *args)
{
	const char *a[] = { "--proc-type", "primary", "--runtime-dir", rundir_path(), "--af-xdp",
			    args, "--queues-claim", "none", "--forward-mode", "rxonly",
			    "--idle-sleep", "1000", NULL };

	peer_begin(&primary, FWD, a, "forwarding");
}

/* A secondary mpops-fwd on queue pair @qp in @mode (more options after). */
static void secondary_start(struct peer *p, const char *qp, const char *mode,
			    const char *const *more)
{
	const char *a[24] = { "--proc-type", "secondary", "--runtime-dir", rundir_path(),
			      "--queues-claim", qp, "--forward-mode", mode, "--json" };
	int n = 9;

	for (; more && *more; more++)
		a[n++] = *more;
	a[n] = NULL;
	peer_begin(p, FWD, a, "forwarding");
}

static void end_ok(struct peer *p, int sig, const char *who)
{
	int st = peer_end(p, sig);

	cr_assert(EXITED_OK(st), "%s exited with status %#x:\n%s", who, st, p->out);
}

/* This process's own count @key of queue pair @qp in its final JSON. */
static unsigned long long own(const struct peer *p, unsigned qp, const char *key)
{
	char pat[64];
	const char *q = strstr(p->out, "\"queues\": [");

	cr_assert_not_null(q, "no report in:\n%s", p->out);
	snprintf(pat, sizeof(pat), "{\"qp\": %u, ", qp);
	q = strstr(q, pat);
	cr_assert_not_null(q, "queue pair %u not in:\n%s", qp, p->out);
	return json_num(q, key);
}

/* xsk-peer send on vxb's queue @q: @n frames. */
static void peer_send(unsigned q, unsigned n, unsigned pps)
{
	char qs[8], ns_[16], ps[16], out[4096];
	const char *a[] = { "send", "vxb", qs, ns_, ps, NULL };
	int st;

	snprintf(qs, sizeof(qs), "%u", q);
	snprintf(ns_, sizeof(ns_), "%u", n);
	snprintf(ps, sizeof(ps), "%u", pps);
	st = peer_run("xsk-peer", a, out, sizeof(out));
	cr_assert(EXITED_OK(st), "xsk-peer send: %#x\n%s", st, out);
}

/* mpops-dump --json of the port, once. */
static void dump(char *out, size_t len)
{
	const char *a[] = { "--json", "--runtime-dir", rundir_path(), "fwd", "port0", NULL };
	int st = peer_run(DUMP, a, out, len);

	cr_assert(EXITED_OK(st), "mpops-dump: %#x\n%s", st, out);
}

/* The pool after everything settled: nothing held by anyone, nothing
 * unaccounted; what is not free is on the rings. */
static void pool_check(void)
{
	static char out[1 << 15];
	const char *pool;

	for (int i = 0; i < 100; i++) {
		dump(out, sizeof(out));
		pool = strstr(out, "\"pool\": ");
		cr_assert_not_null(pool, "%s", out);
		if (json_num(pool, "gone") == 0 && json_num(pool, "held") == 0)
			break;
		usleep(100000);
	}
	cr_assert_eq(json_num(pool, "held"), 0, "%s", out);
	cr_assert_eq(json_num(pool, "gone"), 0, "%s", out);
	cr_assert_eq(json_num(pool, "unaccounted"), 0, "%s", out);
	cr_assert_eq(json_num(pool, "lost"), 0, "%s", out);
	cr_assert_eq(json_num(pool, "free") + json_num(pool, "on_rings"),
		     json_num(pool, "total"), "%s", out);
}

Test(afxdp, two_secondaries_receive_exactly_what_the_peer_sent_to_their_queues_and_send_what_it_counts)
{
	const char *tx0[] = { "--count", "1000", "--duration", "3", NULL };
	const char *tx1[] = { "--count", "2000", "--duration", "3", NULL };
	const char *ca[] = { "count", "vxb", "3000", "10", NULL };

	primary_start("iface=vxa,queues=2,mode=native,ring_size=4096");
	cr_assert(strstr(primary.out, "native XDP"), "%s", primary.out);
	secondary_start(&sec[0], "0", "rxonly", NULL);
	secondary_start(&sec[1], "1", "rxonly", NULL);
	peer_send(0, 3000, 20000);
	peer_send(1, 5000, 20000);
	usleep(500000);
	end_ok(&sec[0], SIGTERM, "secondary on queue pair 0");
	end_ok(&sec[1], SIGTERM, "secondary on queue pair 1");
	cr_assert_eq(own(&sec[0], 0, "rx_packets"), 3000, "%s", sec[0].out);
	cr_assert_eq(own(&sec[1], 1, "rx_packets"), 5000, "%s", sec[1].out);

	/* And the other way: each secondary's frames, counted at vxb by the
	 * queue pair in their stamp. */
	peer_begin(&gen, "xsk-peer", ca, "ready");
	secondary_start(&sec[0], "0", "txonly", tx0);
	secondary_start(&sec[1], "1", "txonly", tx1);
	end_ok(&sec[0], 0, "secondary sending on queue pair 0");
	end_ok(&sec[1], 0, "secondary sending on queue pair 1");
	end_ok(&gen, 0, "xsk-peer count");
	cr_assert(strstr(gen.out, "qp0=1000 qp1=2000 total=3000"), "%s", gen.out);
	pool_check();
	end_ok(&primary, SIGTERM, "primary");
}

Test(afxdp, the_kernel_stack_on_the_peer_answers_arp_and_ping_through_a_secondary)
{
	const char *a[] = { rundir_path(), "fwd", "port0", "10.77.0.1", "10.77.0.2", NULL };
	char out[4096];
	int st;

	sh("ip addr add 10.77.0.2/24 dev vxb");
	primary_start("iface=vxa,queues=2,mode=native");
	st = peer_run("afxdp-ping", a, out, sizeof(out));
	cr_assert(EXITED_OK(st), "afxdp-ping: %#x\n%s", st, out);
	cr_assert(strstr(out, "arp reply from "), "%s", out);
	cr_assert(strstr(out, "echo reply seq 1\nok\n"), "%s", out);
	pool_check();
	end_ok(&primary, SIGTERM, "primary");
}

Test(afxdp, a_secondary_killed_mid_traffic_twenty_times_is_replaced_and_no_frame_is_lost)
{
	const char *ga[] = { "send", "vxb", "0", "400000", "20000", NULL };
	char out[1 << 15];

	primary_start("iface=vxa,queues=1,ring_size=2048");
	peer_begin(&gen, "xsk-peer", ga, NULL);
	for (int i = 0; i < 20; i++) {
		secondary_start(&sec[0], "0", i % 2 ? "io" : "rxonly", NULL);
		usleep(50000 + (unsigned)(rand() % 200) * 1000);
		cr_assert_eq(peer_end(&sec[0], SIGKILL) & 0x7f, SIGKILL, "%s", sec[0].out);
	}
	/* The last one takes the queue over once more and receives. */
	secondary_start(&sec[0], "0", "rxonly", NULL);
	usleep(500000);
	end_ok(&sec[0], SIGTERM, "the last secondary");
	cr_assert_gt(own(&sec[0], 0, "rx_packets"), 0, "%s", sec[0].out);
	cr_assert(strstr(sec[0].out, "queue pair 0 taken over from pid "), "%s", sec[0].out);
	peer_end(&gen, SIGKILL);
	usleep(200000);
	pool_check();
	dump(out, sizeof(out));
	cr_assert(strstr(out, "\"started\": true"), "%s", out);
	end_ok(&primary, SIGTERM, "primary");
}

Test(afxdp, link_down_stops_bursts_and_up_resumes_them_in_the_same_secondary)
{
	static char out[1 << 15];
	int down = 0, up = 0;

	primary_start("iface=vxa,queues=2,mode=native,ring_size=4096");
	secondary_start(&sec[0], "0", "rxonly", NULL);
	peer_send(0, 500, 20000);
	sh("ip link set vxb down");
	for (int i = 0; i < 50 && !down; i++) {
		dump(out, sizeof(out));
		down = strstr(out, "\"link_up\": false") != NULL;
		usleep(100000);
	}
	cr_assert(down, "link still up after vxb went down:\n%s", out);
	sh("ip link set vxb up");
	for (int i = 0; i < 50 && !up; i++) {
		dump(out, sizeof(out));
		up = strstr(out, "\"link_up\": true") != NULL;
		usleep(100000);
	}
	cr_assert(up, "link still down after vxb came up:\n%s", out);
	peer_send(0, 700, 20000);
	usleep(300000);
	end_ok(&sec[0], SIGTERM, "secondary");
	cr_assert_eq(own(&sec[0], 0, "rx_packets"), 1200, "%s", sec[0].out);
	end_ok(&primary, SIGTERM, "primary");
	cr_assert(strstr(primary.out, "its interface is down: bursts return 0"), "%s", primary.out);
	cr_assert(strstr(primary.out, "is up again: traffic resumes"), "%s", primary.out);
}

/* A primary that must fail with @line in its output (exit status 1). */
static void primary_fails(const char *args, const char *line)
{
	const char *a[] = { "--proc-type", "primary", "--runtime-dir", rundir_path(), "--region",
			    "bad", "--af-xdp", args, "--duration", "1", NULL };
	char out[8192];
	int st = peer_run(FWD, a, out, sizeof(out));

	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %#x:\n%s", st, out);
	cr_assert(strstr(out, line), "no '%s' in:\n%s", line, out);
}

Test(afxdp, bad_set_ups_fail_with_one_line_that_says_what_to_do)
{
	primary_fails("iface=nosuch0", "no interface nosuch0 in this network namespace");
	primary_fails("iface=vxa,colour=blue", "unknown key 'colour'");
	primary_fails("iface=vxa,frame_size=1000", "frame_size 1000: use 2048 or 4096");
	primary_fails("iface=vxa,queues=2,ring_size=4096,pool_size=8192",
		      "pool_size 8192 is less than 2 x ring_size 4096 x 2 queue pairs");
	primary_fails("iface=vxa,start_queue=1,queues=2", "vxa has 2 queues, the port needs queue 2");
	primary_fails("iface=vxa,zero_copy=on", "vxa refused zero-copy: use zero_copy=auto or off");
	/* The namespace's own loopback: an MTU no frame holds, then (at 1500)
	 * no native XDP. */
	primary_fails("iface=lo", "lo has MTU 65536, more than a 2048-byte frame holds");
	sh("ip link set lo mtu 1500 up");
	primary_fails("iface=lo,mode=native", "lo refused native XDP: use mode=auto or generic");
	/* A port on queue 0 holds the interface's XDP hook: a second one on
	 * queue 1 binds its socket, then cannot attach; a third on queue 0
	 * finds the queue busy. */
	primary_start("iface=vxa,queues=1");
	primary_fails("iface=vxa,start_queue=1", "vxa already has an XDP program");
	primary_fails("iface=vxa", "queue 0 of vxa is busy");
	end_ok(&primary, SIGTERM, "primary");
}

/*
 * In this process: a pool left under the port's name by an earlier port
 * with other buffers, and a shared block that no longer matches its pool
 * (as memory overwritten would leave it), each refused with one line.
 */
Test(afxdp, a_pool_of_another_layout_and_a_corrupt_shared_block_are_refused_with_one_line)
{
	struct mpops_region_opts ro = { .sz = sizeof(ro), .size = 64u << 20,
					.runtime_dir = rundir_path() };
	struct mpops_pktpool_opts po = { .sz = sizeof(po), .count = 1024, .buf_size = 2176 };
	struct mpops_port *p = NULL, *p2 = NULL;
	struct afxdp_shared *sh;
	struct mpops_region *r;
	mpops_off_t pool, umem;

	logcap_start();
	cr_assert_eq(mpops_region_create("axbad", &ro, &r), 0);
	cr_assert_eq(mpops_pktpool_create(r, "port.ax0.pool", &po, &pool), 0);
	cr_assert_eq(afxdp_port_create_args(r, "ax0", "iface=vxa,queues=1,ring_size=256,pool_size=1024", &p),
		     -EEXIST);
	cr_assert_eq(logcap_count("afxdp ax0: the port's pool (from an earlier port of that name?) is not laid out in 2048-byte frames: pick another name or frame_size"),
		     1);
	cr_assert_eq(afxdp_port_create_args(r, "ax1", "iface=vxa,queues=1,ring_size=256,pool_size=1024", &p), 0);
	sh = mpops_port_drv_shared(p);
	umem = sh->umem_off;
	sh->umem_off = umem + 4096;
	cr_assert_eq(mpops_port_open(r, "ax1", &p2), -EPROTO);
	cr_assert_eq(logcap_count("afxdp ax1: the shared port does not match its pool: it is corrupt; restart the primary"),
		     1);
	sh->umem_off = umem;
	cr_assert_eq(mpops_port_open(r, "ax1", &p2), 0);
	cr_assert_eq(mpops_port_close(p2), 0);
	cr_assert_eq(mpops_port_close(p), 0);
	cr_assert_eq(mpops_region_detach(r), 0);
}

/* mpops-fwd as a primary on vxa, run as nobody with capabilities @caps
 * (setpriv's form, "" for none): its exit status and output. */
static int primary_as_nobody(const char *caps, char *out, size_t len)
{
	char cmd[512], inh[64], amb[64];
	const char *argv[] = { "/usr/bin/setpriv", "--reuid=65534", "--regid=65534",
			       "--clear-groups", inh, amb, "--", "/bin/sh", "-c", cmd, NULL };
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int p[2];

	snprintf(inh, sizeof(inh), "--inh-caps=%s", *caps ? caps : "-all");
	snprintf(amb, sizeof(amb), "--ambient-caps=%s", *caps ? caps : "-all");
	snprintf(cmd, sizeof(cmd),
		 "%s/" FWD " --runtime-dir /tmp --region nocap%d --af-xdp iface=vxa --duration 1",
		 getenv("MPOPS_TEST_BINDIR"), (int)getpid());
	/* peer_start runs programs next to the tests; setpriv is not one. */
	cr_assert_eq(pipe(p), 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_adddup2(&fa, p[1], 2);
	cr_assert_eq(posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	return peer_finish(pid, p[0], out, len, 20000);
}

/*
 * A primary that hands a secondary fewer sockets than the shared block says
 * it has (a primary of another build would): the secondary's claim fails
 * with one line, and the primary goes on. Played here by a primary in this
 * process whose shared block is made to say two queue pairs.
 */
Test(afxdp, a_primary_handing_over_the_wrong_number_of_sockets_is_refused_with_one_line)
{
	struct mpops_region_opts ro = { .sz = sizeof(ro), .size = 64u << 20,
					.runtime_dir = rundir_path() };
	const char *a[] = { "--proc-type", "secondary", "--runtime-dir", rundir_path(),
			    "--region", "axfd", "--queues-claim", "0", "--forward-mode",
			    "rxonly", "--duration", "1", NULL };
	struct mpops_port *p = NULL;
	struct afxdp_shared *sh;
	struct mpops_region *r;
	char out[8192];
	int st;

	cr_assert_eq(mpops_region_create("axfd", &ro, &r), 0);
	cr_assert_eq(afxdp_port_create_args(r, "port0", "iface=vxa,queues=1,ring_size=256,pool_size=1024",
					    &p), 0);
	cr_assert_eq(mpops_port_start(p), 0);
	sh = mpops_port_drv_shared(p);
	sh->nb_qp = 2;
	st = peer_run(FWD, a, out, sizeof(out));
	sh->nb_qp = 1;
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %#x:\n%s", st, out);
	cr_assert(strstr(out, "afxdp port0: the primary handed over 1 socket fds for 2 queue pairs: restart both from the same build"),
		  "%s", out);
	/* The primary and its port go on: a secondary of the right view works. */
	out[0] = '\0';
	st = peer_run(FWD, a, out, sizeof(out));
	cr_assert(EXITED_OK(st), "status %#x:\n%s", st, out);
	cr_assert_eq(mpops_port_close(p), 0);
	cr_assert_eq(mpops_region_detach(r), 0);
}

Test(afxdp, a_primary_without_capabilities_is_refused_with_one_line)
{
	char out[8192];
	int st;

	if (access("/usr/bin/setpriv", X_OK) != 0)
		cr_skip_test("setpriv (util-linux) is not installed");
	out[0] = '\0';
	st = primary_as_nobody("", out, sizeof(out));
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %#x:\n%s", st, out);
	cr_assert(strstr(out, "no permission to open an AF_XDP socket: run the primary as root or with CAP_NET_RAW"),
		  "%s", out);
	/* With CAP_NET_RAW the sockets are made; the program's maps are not. */
	out[0] = '\0';
	st = primary_as_nobody("+net_raw", out, sizeof(out));
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %#x:\n%s", st, out);
	cr_assert(strstr(out, "afxdp port0: no permission to create BPF maps: run the primary as root or with CAP_BPF and CAP_NET_ADMIN"),
		  "%s", out);
	cr_assert_null(strstr(out, "AF_XDP socket"), "%s", out);
}

/* dpdk-testpmd with DPDK's own AF_XDP driver on vxb (one queue: 22.11
 * refuses two on veth), in a single process without hugepages. */
static void testpmd_start(struct peer *p, const char *const *fwd)
{
	char fp[32];
	const char *argv[32] = { "timeout", "60", TESTPMD, "-l", "0,1", "--no-pci", "--no-huge",
				 "-m", "256", "--file-prefix", fp, "--vdev",
				 "net_af_xdp0,iface=vxb,start_queue=0,queue_count=1", "--",
				 "--auto-start", "--stats-period", "1", "--total-num-mbufs",
				 "16384", "--nb-cores", "1" };
	posix_spawn_file_actions_t fa;
	int n = 21, pp[2];

	for (; *fwd; fwd++)
		argv[n++] = *fwd;
	argv[n] = NULL;
	snprintf(fp, sizeof(fp), "%s", ns);	/* removed at teardown */
	cr_assert_eq(pipe2(pp, O_CLOEXEC), 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pp[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pp[1], 2);
	cr_assert_eq(posix_spawnp(&p->pid, "timeout", &fa, NULL, (char *const *)argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(pp[1]);
	p->fd = pp[0];
	p->out[0] = '\0';
	cr_assert_eq(peer_wait_line(p->fd, "Port statistics", p->out, sizeof(p->out), 30000), 0,
		     "testpmd did not start:\n%s", p->out);
}

/* The last figure after @key in testpmd's output. */
static unsigned long long last(const char *out, const char *key)
{
	const char *p, *l = NULL;

	for (p = out; (p = strstr(p, key)); p++)
		l = p;
	cr_assert_not_null(l, "no %s in:\n%s", key, out);
	return strtoull(l + strlen(key), NULL, 10);
}

Test(afxdp, dpdk_net_af_xdp_on_the_peer_and_a_secondary_here_exchange_exact_counts)
{
	const char *io[] = { "--forward-mode=io", "--tx-first", "--burst=512", NULL };
	const char *rxonly[] = { "--forward-mode=rxonly", NULL };
	/* Fewer than its rx ring holds: it may be slow to poll (under ASan). */
	const char *tx[] = { "--count", "1500", "--duration", "3", NULL };

	if (access(TESTPMD, X_OK) != 0)
		cr_skip_test("%s is not installed (apt-get install dpdk)", TESTPMD);
	primary_start("iface=vxa,queues=2,mode=native,ring_size=4096");
	/* DPDK's side sends one burst of 512 of its txonly frames (io mode
	 * with --tx-first: an exact count; its txonly mode has no end). */
	secondary_start(&sec[0], "0,1", "rxonly", NULL);
	testpmd_start(&gen, io);
	usleep(1500000);
	peer_end(&gen, SIGINT);
	cr_assert_eq(last(gen.out, "TX-packets: "), 512, "%s", gen.out);
	usleep(200000);
	end_ok(&sec[0], SIGTERM, "secondary receiving");
	cr_assert_eq(own(&sec[0], 0, "rx_packets") + own(&sec[0], 1, "rx_packets"), 512, "%s",
		     sec[0].out);
	/* And ours into its rxonly. */
	testpmd_start(&gen, rxonly);
	secondary_start(&sec[1], "0", "txonly", tx);
	end_ok(&sec[1], 0, "secondary sending");
	usleep(500000);
	peer_end(&gen, SIGINT);
	cr_assert_eq(last(gen.out, "RX-packets: "), 1500, "%s", gen.out);
	pool_check();
	end_ok(&primary, SIGTERM, "primary");
}

Test(afxdp, ring_entries_no_kernel_writes_and_a_foreign_tx_packet_are_counted_not_believed)
{
	const char *a[] = { rundir_path(), "fwd", "port0", NULL };
	char out[8192];
	int st;

	primary_start("iface=vxa,queues=1,ring_size=1024");
	st = peer_run("afxdp-hostile", a, out, sizeof(out));
	cr_assert(EXITED_OK(st), "afxdp-hostile: %#x\n%s", st, out);
	/* Nothing delivered, both entries counted, the chain dropped. */
	cr_assert(strstr(out, "rx=0 rx_errors=2 tx_sent=1 tx_errors=1 tx_drops=1\n"), "%s", out);
	cr_assert(strstr(out, "rx descriptor with an address that is no posted frame (0x10000000000): skipped and counted in errors"),
		  "%s", out);
	cr_assert(strstr(out, "tx packet that is not one segment of a frame of the port's pool: dropped"),
		  "%s", out);
	pool_check();
	end_ok(&primary, SIGTERM, "primary");
}

/* Wait (5 s at most) until queue pair @qp of @p received @n packets. */
static void rx_wait(struct mpops_port *p, uint16_t qp, uint64_t n)
{
	struct mpops_port_queue_stats rx = { 0 };

	for (int i = 0; i < 500; i++) {
		cr_assert_eq(mpops_port_stats_get(p, qp, &rx, NULL), 0);
		if (rx.packets >= n)
			break;
		usleep(10000);
	}
	cr_assert_eq(rx.packets, n, "queue pair %u received %llu of %llu", qp,
		     (unsigned long long)rx.packets, (unsigned long long)n);
	usleep(20000);	/* its refill follows the burst that counted */
}

Test(afxdp, a_secondary_keeps_its_claim_while_the_port_stops_and_starts_and_no_frame_is_lost)
{
	struct mpops_region_opts ro = { .sz = sizeof(ro), .size = 64u << 20,
					.runtime_dir = rundir_path() };
	struct afxdp_conf c = { .sz = sizeof(c), .iface = "vxa", .nb_qp = 2,
				.xdp_mode = AFXDP_XDP_NATIVE, .ring_size = 1024 };
	struct mpops_pktpool_census pc = { .sz = sizeof(pc) };
	struct mpops_region *r;
	struct mpops_port *p;

	/* This test process is the primary: it stops and starts the port. */
	cr_assert_eq(mpops_region_create("fwd", &ro, &r), 0);
	cr_assert_eq(afxdp_port_create(r, "port0", &c, &p), 0);
	cr_assert_eq(mpops_port_start(p), 0);
	secondary_start(&sec[0], "1", "rxonly", NULL);
	peer_send(1, 1000, 20000);
	for (int round = 0; round < 3; round++) {
		/* Everything sent so far received (and the fill ring topped up)
		 * before the stop: what a stop drops is not what this counts. */
		rx_wait(p, 1, 1000 * (uint64_t)(round + 1));
		cr_assert_eq(mpops_port_stop(p), 0);
		cr_assert_eq(mpops_port_pool_census(p, &pc), 0);
		/* The fill rings' frames stayed with the kernel, kept; nothing
		 * was taken for a dead burst's; nothing is held or missing. */
		for (int q = 0; q < 2; q++)	/* full, but for a refill's batch */
			cr_assert(pc.on_queue[q][0] > 1024 - 64 && pc.on_queue[q][0] <= 1024,
				  "round %d, queue pair %d: %u on its fill ring", round, q,
				  pc.on_queue[q][0]);
		cr_assert_eq(pc.recovered, 0);
		cr_assert_eq(pc.unaccounted, 0);
		cr_assert_eq(pc.free + pc.on_rings + pc.held, pc.total);
		/* Stopped: the queue is out of the map, frames go to the stack. */
		peer_send(1, 100, 20000);
		cr_assert_eq(mpops_port_start(p), 0);
		peer_send(1, 1000, 20000);
	}
	rx_wait(p, 1, 4000);
	end_ok(&sec[0], SIGTERM, "secondary");
	/* The same process, the same claim: every frame sent while started. */
	cr_assert_eq(own(&sec[0], 1, "rx_packets"), 4000, "%s", sec[0].out);
	cr_assert_eq(mpops_port_pool_census(p, &pc), 0);
	cr_assert_eq(pc.unaccounted, 0);
	cr_assert_eq(pc.free + pc.on_rings + pc.held, pc.total);
	mpops_port_close(p);
	mpops_region_detach(r);
}

Test(afxdp, the_demo_runs_on_the_af_xdp_driver_in_a_namespace_of_its_own)
{
	const char *a[] = { "--af-xdp", "--duration", "2", "--json", NULL };
	static char out[1 << 15];
	const char *p;
	int st = peer_run("../app/mpops-demo", a, out, sizeof(out));

	cr_assert(EXITED_OK(st), "mpops-demo --af-xdp: %#x\n%s", st, out);
	cr_assert(strstr(out, "ops ID ") && strstr(out, "= mpops_port_drv/afxdp -> ops table"), "%s",
		  out);
	/* Both secondaries sent and got packets back through the peer port. */
	for (int q = 0; q < 2; q++) {
		char pat[64];

		snprintf(pat, sizeof(pat), "\"role\": \"secondary\", \"pid\": ");
		p = strstr(out, pat);
		for (int k = 0; p && k < q; k++)
			p = strstr(p + 1, pat);
		cr_assert_not_null(p, "%s", out);
		cr_assert_gt(json_num(p, "rx_packets"), 0, "%s", out);
		cr_assert_gt(json_num(p, "tx_packets"), 0, "%s", out);
		cr_assert_eq(json_num(p, "exit_status"), 0, "%s", out);
	}
}
