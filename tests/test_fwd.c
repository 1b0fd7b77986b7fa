/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mpops-fwd end to end: a primary and secondaries, each its own mpops-fwd
 * process, forwarding through mpops-vhost (another executable). Counts are
 * checked against each other and against the backend's own JSON counts:
 * what the backend received is what the processes sent, what it sent is
 * what they received.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

#define FWD "../app/mpops-fwd"
#define VHOST "../drivers/virtio/backend/mpops-vhost"

/* Every process a test starts: ended by pid at teardown if still running. */
static struct peer backend, primary, sec[3];
static char sock[128];

static void setup(void)
{
	rundir_make();
	snprintf(sock, sizeof(sock), "%s/vhost.sock", rundir_path());
	backend.pid = primary.pid = -1;
	for (int i = 0; i < 3; i++)
		sec[i].pid = -1;
}

static void teardown(void)
{
	peers_end_all();
	for (int i = 0; i < 3; i++)
		peer_end(&sec[i], SIGKILL);
	peer_end(&primary, SIGKILL);
	peer_end(&backend, SIGKILL);
	rundir_remove();
}

TestSuite(fwd, .init = setup, .fini = teardown, .timeout = 90);

/* mpops-vhost with @nqp queue pairs in @mode (extra options after). */
static void backend_start(const char *nqp, const char *mode, const char *extra)
{
	const char *a[] = { "--socket", sock, "--queues", nqp, "--mode", mode, "--kick-driven",
			    "--quiet", extra, NULL };
	struct stat st;

	peer_begin(&backend, VHOST, a, NULL);
	for (int i = 0; i < 500 && stat(sock, &st) < 0; i++)
		usleep(10000);
}

/* The primary mpops-fwd: @nqp queue pairs, then its own options. */
static void primary_start(const char *nqp, const char *const *opts)
{
	const char *a[32] = { "--proc-type", "primary", "--runtime-dir", rundir_path(),
			      "--vhost-socket", sock, "--queues", nqp, "--json" };
	int n = 9;

	for (; *opts; opts++)
		a[n++] = *opts;
	a[n] = NULL;
	peer_begin(&primary, FWD, a, "forwarding");
}

/* A secondary mpops-fwd with @opts; with @ready, wait for that line. */
static void secondary_start(struct peer *p, const char *const *opts, const char *ready)
{
	const char *a[32] = { "--proc-type", "secondary", "--runtime-dir", rundir_path(), "--json" };
	int n = 5;

	for (; *opts; opts++)
		a[n++] = *opts;
	a[n] = NULL;
	peer_begin(p, FWD, a, ready);
}

/* End a process that must exit 0 (@sig 0: it ends by itself). */
static void end_ok(struct peer *p, int sig, const char *who)
{
	int st = peer_end(p, sig);

	cr_assert(EXITED_OK(st), "%s exited with status %#x:\n%s", who, st, p->out);
}

/* The final JSON object of an mpops-fwd process. */
static const char *report(const struct peer *p)
{
	const char *j = strstr(p->out, "{\"role\": ");

	cr_assert_not_null(j, "no JSON report in:\n%s", p->out);
	return j;
}

/* This process's own counts of queue pair @qp (in its "queues"). */
static const char *own(const struct peer *p, unsigned qp)
{
	char pat[64];
	const char *q;

	snprintf(pat, sizeof(pat), "{\"qp\": %u, \"rx_packets\"", qp);
	q = strstr(strstr(report(p), "\"queues\": ["), pat);
	cr_assert_not_null(q, "queue pair %u not in the report:\n%s", qp, report(p));
	return q;
}

/* The shared counters of queue pair @qp as @p read them at its end. */
static const char *shared(const struct peer *p, unsigned qp)
{
	char pat[64];
	const char *q;

	snprintf(pat, sizeof(pat), "{\"qp\": %u, \"owner_pid\"", qp);
	q = strstr(report(p), pat);
	cr_assert_not_null(q, "queue pair %u not in port_queues:\n%s", qp, report(p));
	return q;
}

/* The backend's JSON at its exit. */
static const char *backend_end(void)
{
	const char *j;

	end_ok(&backend, SIGTERM, "mpops-vhost");
	j = strstr(backend.out, "{\"received_packets\": ");
	cr_assert_not_null(j, "no JSON from the backend:\n%s", backend.out);
	return j;
}

/* Lines in @s. */
static int lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* Is there a line in @out with both @a and @b? */
static int line_with_both(const char *out, const char *a, const char *b)
{
	for (const char *l = out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		const char *nl = strchr(l, '\n'), *pa = strstr(l, a), *pb = strstr(l, b);

		if (pa && pb && (!nl || (pa < nl && pb < nl)))
			return 1;
	}
	return 0;
}

/* The shared counters say what each process counted itself, and no errors. */
static void shared_matches_own(const struct peer *reader, const struct peer *p, unsigned qp)
{
	const char *s = shared(reader, qp), *o = own(p, qp);

	cr_assert_eq(json_num(s, "rx_packets"), json_num(o, "rx_packets"), "qp %u:\n%s\n%s", qp, s, o);
	cr_assert_eq(json_num(s, "tx_packets"), json_num(o, "tx_packets"), "qp %u:\n%s\n%s", qp, s, o);
	cr_assert_eq(json_num(s, "rx_errors") + json_num(s, "tx_errors"), 0, "%s", s);
}

/*
 * The primary forwards on queue pair 2 while two secondaries hold 0 and 1,
 * all at once, through a loopback backend: txonly with exact counts in the
 * primary and in one secondary, macswap in the other.
 */
Test(fwd, primary_and_two_secondaries_count_what_the_backend_counted)
{
	const char *p[] = { "--queues-claim", "2", "--forward-mode", "txonly", "--count", "3000",
			    "--idle-sleep", "100", NULL };
	const char *a[] = { "--queues-claim", "0", "--forward-mode", "txonly", "--count", "5000",
			    "--duration", "2", "--idle-sleep", "100", NULL };
	const char *b[] = { "--queues-claim", "1", "--forward-mode", "macswap", "--tx-first",
			    "--duration", "2", NULL };
	struct peer *all[] = { &sec[0], &sec[1], &primary };
	unsigned long long rx = 0, tx = 0;
	const char *be, *o;
	char q0[48], q1[48];
	pid_t pid0, pid1;

	backend_start("3", "loopback", NULL);
	primary_start("3", p);
	secondary_start(&sec[0], a, NULL);
	secondary_start(&sec[1], b, NULL);
	pid0 = sec[0].pid;
	pid1 = sec[1].pid;
	end_ok(&sec[0], 0, "secondary 0");
	end_ok(&sec[1], 0, "secondary 1");
	end_ok(&primary, SIGTERM, "the primary");
	be = backend_end();

	/* txonly sent exactly its count, and got packets back. */
	cr_assert_eq(json_num(own(&sec[0], 0), "tx_packets"), 5000);
	cr_assert_eq(json_num(own(&sec[0], 0), "tx_bytes"), 5000 * 64);
	cr_assert_gt(json_num(own(&sec[0], 0), "rx_packets"), 0);
	cr_assert_eq(json_num(own(&primary, 2), "tx_packets"), 3000);
	cr_assert_gt(json_num(own(&primary, 2), "rx_packets"), 0);
	/* macswap sent back all it received (but what came after its end),
	 * plus its first burst. */
	o = own(&sec[1], 1);
	cr_assert_gt(json_num(o, "rx_packets"), 1000, "%s", o);
	cr_assert_eq(json_num(o, "tx_packets"),
		     json_num(o, "rx_packets") - json_num(o, "drained") - json_num(o, "tx_dropped") + 32, "%s", o);
	/* The backend saw every packet they sent, and they received every
	 * packet it sent. */
	for (int i = 0; i < 3; i++) {
		rx += json_num(report(all[i]), "rx_packets");
		tx += json_num(report(all[i]), "tx_packets");
		cr_assert_eq(json_num(report(all[i]), "audit"), 0);
	}
	cr_assert_eq(json_num(be, "received_packets"), tx, "%s", be);
	cr_assert_eq(json_num(be, "sent_packets"), rx, "%s", be);
	cr_assert_eq(json_num(be, "received_packets"), json_num(be, "sent_packets") + json_num(be, "drops"), "%s", be);
	/* The shared counters, as the primary read them at its end. */
	shared_matches_own(&primary, &sec[0], 0);
	shared_matches_own(&primary, &sec[1], 1);
	shared_matches_own(&primary, &primary, 2);
	/* While they ran, a rate line of the primary named both owners. */
	snprintf(q0, sizeof(q0), "| q0 pid %d: ", (int)pid0);
	snprintf(q1, sizeof(q1), "| q1 pid %d: ", (int)pid1);
	cr_assert(line_with_both(primary.out, q0, q1), "no line with '%s' and '%s':\n%s", q0, q1,
		  primary.out);
}

/*
 * A switch returns a packet on whichever queue its thread polls. Through
 * mpops-vhost --cross (tx k -> rx k + 1): txonly on queue pair 0, io on 1
 * forwards what comes from 0, rxonly on 2 (the primary) gets what 1 sent.
 * Nothing comes back where it was sent, and nothing is an error.
 */
Test(fwd, packets_returned_on_another_queue_are_counted_not_errors)
{
	const char *p[] = { "--queues-claim", "2", "--forward-mode", "rxonly", "--idle-sleep", "100",
			    NULL };
	const char *a[] = { "--queues-claim", "0", "--forward-mode", "txonly", "--count", "4000",
			    "--duration", "1.5", "--idle-sleep", "100", NULL };
	const char *b[] = { "--queues-claim", "1", "--forward-mode", "io", "--duration", "3",
			    "--idle-sleep", "50", NULL };
	const char *be, *o;

	backend_start("3", "loopback", "--cross");
	primary_start("3", p);
	secondary_start(&sec[1], b, "forwarding");
	secondary_start(&sec[0], a, NULL);
	end_ok(&sec[0], 0, "the txonly secondary");
	end_ok(&sec[1], 0, "the io secondary");
	end_ok(&primary, SIGTERM, "the primary");
	be = backend_end();

	cr_assert_eq(json_num(own(&sec[0], 0), "tx_packets"), 4000);
	cr_assert_eq(json_num(own(&sec[0], 0), "rx_packets"), 0, "nobody sends on tx 2");
	o = own(&sec[1], 1);
	cr_assert_gt(json_num(o, "rx_packets"), 0, "%s", o);
	cr_assert_eq(json_num(o, "tx_packets") + json_num(o, "tx_dropped") + json_num(o, "drained"),
		     json_num(o, "rx_packets"), "io sends on what it receives: %s", o);
	cr_assert_gt(json_num(own(&primary, 2), "rx_packets"), 0, "%s", report(&primary));
	cr_assert_eq(json_num(own(&primary, 2), "tx_packets"), 0);
	cr_assert_eq(json_num(be, "received_packets"), 4000 + json_num(o, "tx_packets"), "%s", be);
	cr_assert_eq(json_num(be, "sent_packets"),
		     json_num(o, "rx_packets") + json_num(own(&primary, 2), "rx_packets"), "%s", be);
	for (unsigned qp = 0; qp < 3; qp++)
		cr_assert_eq(json_num(shared(&primary, qp), "rx_errors") +
			     json_num(shared(&primary, qp), "tx_errors"), 0);
}

/* txonly in a secondary, counted by a sink backend to the packet and byte. */
Test(fwd, txonly_secondary_is_counted_by_a_sink_backend)
{
	const char *p[] = { "--queues-claim", "none", NULL };
	const char *a[] = { "--queues-claim", "1", "--forward-mode", "txonly", "--size", "128",
			    "--count", "10000", "--duration", "2", "--idle-sleep", "100", NULL };
	const char *beyond[] = { "--queues-claim", "2", NULL };
	const char *short_run[] = { "--queues-claim", "0", "--forward-mode", "txonly", "--count",
				    "100000000", "--duration", "0.3", "--idle-sleep", "100", NULL };
	const char *be;
	int st;

	backend_start("2", "sink", NULL);
	primary_start("2", p);
	/* A queue pair the port does not have: usage. */
	secondary_start(&sec[2], beyond, NULL);
	st = peer_end(&sec[2], 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "%s", sec[2].out);
	cr_assert(strstr(sec[2].out, "port 'port0' has 2"), "%s", sec[2].out);
	cr_assert_eq(lines(sec[2].out), 1, "%s", sec[2].out);

	secondary_start(&sec[0], a, NULL);
	end_ok(&sec[0], 0, "the secondary");
	cr_assert_eq(json_num(own(&sec[0], 1), "tx_packets"), 10000);
	cr_assert_eq(json_num(own(&sec[0], 1), "tx_bytes"), 10000 * 128);
	cr_assert_eq(json_num(own(&sec[0], 1), "rx_packets"), 0);

	/* A count it cannot reach in its time: exit 1, saying so. */
	secondary_start(&sec[1], short_run, NULL);
	st = peer_end(&sec[1], 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "%s", sec[1].out);
	cr_assert(strstr(sec[1].out, "of its 100000000 packets before the end: give it a longer --duration"),
		  "%s", sec[1].out);

	end_ok(&primary, SIGTERM, "the primary");
	be = backend_end();
	cr_assert_eq(json_num(be, "received_packets"),
		     10000 + json_num(own(&sec[1], 0), "tx_packets"), "%s", be);
	cr_assert_eq(json_num(shared(&primary, 1), "tx_packets"), 10000);
	/* The sink got 128-byte frames from queue pair 1: the bytes add up. */
	cr_assert_eq(json_num(be, "received_bytes"),
		     10000 * 128 + 64 * json_num(own(&sec[1], 0), "tx_packets"), "%s", be);
	cr_assert_eq(json_num(be, "sent_packets"), 0);
}

/*
 * A secondary is SIGKILLed while it holds queue pair 0; a new one takes the
 * claim over and moves packets, while the primary keeps the port (and
 * forwards on queue pair 1) throughout. Then the primary goes, and a
 * secondary still running says so and exits 1.
 */
Test(fwd, killed_secondary_claim_is_taken_over_while_the_primary_keeps_running)
{
	const char *p[] = { "--queues-claim", "1", "--forward-mode", "rxonly", "--idle-sleep", "100",
			    NULL };
	const char *a[] = { "--queues-claim", "0", "--forward-mode", "txonly", "--idle-sleep", "100",
			    NULL };
	const char *b[] = { "--queues-claim", "0", "--forward-mode", "txonly", "--count", "2000",
			    "--duration", "2", "--idle-sleep", "100", NULL };
	const char *c[] = { "--queues-claim", "0", "--forward-mode", "rxonly", "--idle-sleep", "1000",
			    NULL };
	char line[96], gone[96];
	const char *r;
	unsigned long long tx = 0;
	pid_t killed;
	int st;

	backend_start("2", "loopback", NULL);
	primary_start("2", p);
	secondary_start(&sec[0], a, "own count rx ");
	r = strstr(sec[0].out, "own count rx ");
	cr_assert_eq(sscanf(r, "own count rx %*f tx %llu", &tx), 1, "%s", r);
	cr_assert_gt(tx, 0, "%s", sec[0].out);

	/* Held by a live process: refused, naming it. */
	secondary_start(&sec[1], c, NULL);
	st = peer_end(&sec[1], 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "%s", sec[1].out);
	snprintf(line, sizeof(line), "queue pair 0 is claimed by pid %d", (int)sec[0].pid);
	cr_assert(strstr(sec[1].out, line), "%s", sec[1].out);
	cr_assert_eq(lines(sec[1].out), 1, "%s", sec[1].out);

	killed = sec[0].pid;
	peer_end(&sec[0], SIGKILL);
	cr_assert(WIFSIGNALED(sec[0].status) && WTERMSIG(sec[0].status) == SIGKILL);
	secondary_start(&sec[0], b, NULL);
	end_ok(&sec[0], 0, "the new secondary");
	cr_assert_eq(json_num(own(&sec[0], 0), "tx_packets"), 2000);
	cr_assert_gt(json_num(own(&sec[0], 0), "rx_packets"), 0);
	cr_assert_eq(kill(primary.pid, 0), 0, "the primary is gone");

	/* The primary goes: a secondary still running says so. */
	secondary_start(&sec[1], c, "forwarding");
	end_ok(&primary, SIGTERM, "the primary");
	cr_assert_geq(json_num(shared(&primary, 0), "tx_packets"), 2000 + tx);
	/* The claim was taken over by the new owner, or the primary had
	 * released it when it saw its owner die. */
	snprintf(line, sizeof(line), "its owner pid %d is gone: taking it over", (int)killed);
	snprintf(gone, sizeof(gone), "queue pair 0 released: its owner pid %d died", (int)killed);
	cr_assert(strstr(sec[0].out, line) || strstr(primary.out, gone),
		  "no takeover of pid %d's claim:\n%s\n%s", (int)killed, sec[0].out, primary.out);
	st = peer_end(&sec[1], 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "%s", sec[1].out);
	cr_assert(strstr(sec[1].out, "is gone: "), "%s", sec[1].out);
}

Test(fwd, secondary_without_a_primary_fails_with_one_line)
{
	const char *a[] = { "--proc-type", "secondary", "--runtime-dir", rundir_path(),
			    "--region", "nobody", NULL };
	int st;

	peer_begin(&sec[0], FWD, a, NULL);
	st = peer_end(&sec[0], 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %#x:\n%s", st, sec[0].out);
	cr_assert_eq(lines(sec[0].out), 1, "%s", sec[0].out);
	cr_assert(strstr(sec[0].out, "mpops-fwd: cannot attach to region 'nobody' as a secondary: no primary is running"),
		  "%s", sec[0].out);
	cr_assert(strstr(sec[0].out, "start the primary first"), "%s", sec[0].out);
}

/* A primary with @args fails: exit 1 and one line, containing @says. */
static void primary_fails(const char *const *args, const char *says)
{
	int status;

	peer_begin(&primary, FWD, args, NULL);
	status = peer_end(&primary, 0);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1, "status %#x:\n%s", status,
		  primary.out);
	cr_assert_eq(lines(primary.out), 1, "%s", primary.out);
	cr_assert(strstr(primary.out, says), "no '%s' in:\n%s", says, primary.out);
}

Test(fwd, primary_that_cannot_set_up_fails_with_one_line_and_leaves_no_directory)
{
	char dir[160], vsock[160];
	const char *a[] = { "--runtime-dir", dir, "--vhost-server", "--vhost-socket", vsock, NULL };
	struct stat st;

	/* A socket it cannot listen on: the directory it made is removed. */
	snprintf(dir, sizeof(dir), "%s/made", rundir_path());
	snprintf(vsock, sizeof(vsock), "%s/no/such/dir/vhost.sock", rundir_path());
	primary_fails(a, "mpops-fwd: cannot create port 'port0' on vhost-user socket ");
	cr_assert_eq(stat(dir, &st), -1, "%s was left behind", dir);

	/* A runtime directory that cannot be made (under a regular file). */
	snprintf(dir, sizeof(dir), "%s/file", rundir_path());
	cr_assert_eq(mknod(dir, S_IFREG | 0600, 0), 0);
	snprintf(dir, sizeof(dir), "%s/file/sub", rundir_path());
	snprintf(vsock, sizeof(vsock), "%s", sock);
	primary_fails(a, "/file/sub: Not a directory: pick another --runtime-dir");
}

Test(fwd, bad_options_are_usage_errors_in_one_line)
{
	const char *const cases[][5] = {
		{ "--frobnicate", NULL },
		{ "--forward-mode", "5tuple", NULL },
		{ "--proc-type", "tertiary", NULL },
		{ "--proc-type", "secondary", "--queues", "2", NULL },
		{ "--vhost-socket", "x", "--count", "5", NULL },
		{ "--vhost-socket", "x", "--size", "59", NULL },
		{ "--vhost-socket", "x", "--queues-claim", "1,x", NULL },
		{ "--forward-mode", "io", NULL },	/* a primary needs the socket */
	};
	static char out[4096];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int st = peer_run(FWD, cases[i], out, sizeof(out));

		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "case %zu: status %#x:\n%s", i, st,
			  out);
		cr_assert_eq(lines(out), 1, "case %zu:\n%s", i, out);
		cr_assert(strstr(out, "(see mpops-fwd --help)"), "case %zu:\n%s", i, out);
	}
}
