/* SPDX-License-Identifier: BSD-3-Clause */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pthread.h>
#include <sys/mman.h>

#include "channel_priv.h"
#include "demo_ops.h"
#include "helpers.h"
#include "region_priv.h"

static struct mpops_region *r;
static char out[1 << 16];

static int echo(struct mpops_region *rg, const struct mpops_msg *req,
		struct mpops_msg *reply, void *arg)
{
	(void)rg; (void)arg;
	if (req->len + 6 > MPOPS_MSG_DATA_MAX)
		return -EMSGSIZE;
	memcpy(reply->data, req->data, req->len);
	memcpy(reply->data + req->len, "-reply", 6);
	reply->len = req->len + 6;
	return 0;
}

/* Eventfds live until the next test process: the reply borrows them. */
static int held[4096], nheld;

static int get_fds(struct mpops_region *rg, const struct mpops_msg *req,
		   struct mpops_msg *reply, void *arg)
{
	uint32_t n;

	(void)rg; (void)arg;
	if (req->len != sizeof(n))
		return -EINVAL;
	memcpy(&n, req->data, sizeof(n));
	if (n > 4096)
		return -E2BIG;
	for (uint32_t i = 0; i < n; i++) {
		held[nheld] = eventfd(i + 1, EFD_CLOEXEC);
		mpops_msg_add_fd(reply, held[nheld++]);
	}
	return 0;
}

static int put_fds_ok;

static int put_fds(struct mpops_region *rg, const struct mpops_msg *req,
		   struct mpops_msg *reply, void *arg)
{
	(void)rg; (void)reply; (void)arg;
	for (uint32_t i = 0; i < req->nfds; i++) {
		eventfd_t v;

		if (eventfd_read(req->fds[i], &v) < 0 || v != 1001 + i)
			return -EBADMSG;
	}
	put_fds_ok = (int)req->nfds;
	return 0;
}

static int slow(struct mpops_region *rg, const struct mpops_msg *req,
		struct mpops_msg *reply, void *arg)
{
	(void)rg; (void)req; (void)reply; (void)arg;
	usleep(1500 * 1000);
	return 0;
}

static void setup(void)
{
	logcap_start();
	rundir_make();
	r = primary_make("chan");
	cr_assert_not_null(r);
	cr_assert_eq(mpops_channel_register(r, DEMO_MSG_ECHO, echo, NULL), 0);
	cr_assert_eq(mpops_channel_register(r, DEMO_MSG_GET_FDS, get_fds, NULL), 0);
	cr_assert_eq(mpops_channel_register(r, DEMO_MSG_PUT_FDS, put_fds, NULL), 0);
	cr_assert_eq(mpops_channel_register(r, DEMO_MSG_SLOW, slow, NULL), 0);
}

/* A misbehaving peer (chan-rogue), killed by pid in teardown if still running. */
static pid_t rogue = -1;
static int rogue_fd = -1;
static struct rlimit nofile_saved;
static int nofile_lowered;

/* A primary of another uid (mp-primary), ended by pid in teardown. */
static struct peer other_primary;

static void teardown(void)
{
	peer_end(&other_primary, SIGTERM);
	if (rogue > 0) {
		kill(rogue, SIGKILL);
		waitpid(rogue, NULL, 0);
		close(rogue_fd);
		rogue = -1;
	}
	if (nofile_lowered)
		setrlimit(RLIMIT_NOFILE, &nofile_saved);
	if (r)
		mpops_region_detach(r);
	for (int i = 0; i < nheld; i++)
		close(held[i]);
	rundir_remove();
}

TestSuite(channel, .init = setup, .fini = teardown, .timeout = 60);

Test(channel, requests_with_fds_past_the_kernel_limit_both_ways)
{
	const char *args[] = { "request", rundir_path(), "chan", "600", NULL };
	int st = peer_run("mp-secondary", args, out, sizeof(out));

	cr_assert(EXITED_OK(st), "%s", out);
	cr_assert(strstr(out, "echo=0 'hello from "), "%s", out);
	cr_assert(strstr(out, "get_fds=0 n=600"), "%s", out);
	cr_assert(strstr(out, "put_fds=0"), "%s", out);
	cr_assert(strstr(out, "unknown=-95"), "%s", out);	/* -ENOTSUP */
	cr_assert(strstr(out, "slow=-110"), "%s", out);		/* -ETIMEDOUT */
	cr_assert(strstr(out, "after-timeout=0 'ok-reply'"), "%s", out);
	cr_assert_eq(logcap_count("sent request type 0x7777, which has no handler"), 1);
	cr_assert(strstr(out, "did not answer request"), "%s", out);
}

Test(channel, register_checks_type_duplicates_and_role)
{
	cr_assert_eq(mpops_channel_register(r, 5, echo, NULL), -EINVAL);
	cr_assert_eq(mpops_channel_register(r, DEMO_MSG_ECHO, echo, NULL), -EEXIST);
	cr_assert_eq(mpops_channel_register(r, MPOPS_MSG_USER, NULL, NULL), -EINVAL);
	cr_assert_eq(mpops_channel_unregister(r, DEMO_MSG_ECHO), 0);
	cr_assert_eq(mpops_channel_unregister(r, DEMO_MSG_ECHO), -ENOENT);
	cr_assert_eq(logcap_count("already has a handler"), 1);
	{
		struct mpops_msg m = { 0 }, rep;

		cr_assert_eq(mpops_channel_request(r, &m, &rep, 0), -EPERM);
		cr_assert_eq(logcap_count("only a secondary of region 'chan' sends requests"), 1);
		cr_assert_eq(mpops_msg_add_fd(&m, -1), -EBADF);
	}
}

Test(channel, other_uid_is_refused_by_credentials)
{
	const char *args[] = { "nobody", rundir_path(), "chan2", NULL };
	struct mpops_region_opts o = {
		.sz = sizeof(o), .runtime_dir = rundir_path(), .socket_mode = 0666,
	};
	struct mpops_region *r2;
	int st;

	/* One region per process: make this one with a world-writable socket. */
	mpops_region_detach(r);
	r = NULL;
	chmod(rundir_path(), 0755);
	cr_assert_eq(mpops_region_create("chan2", &o, &r2), 0);
	st = peer_run("mp-secondary", args, out, sizeof(out));
	cr_assert(EXITED_OK(st), "%s", out);
	cr_assert(strstr(out, "attach=-13"), "%s", out);
	cr_assert(strstr(out, "the primary refused this process (uid 65534)"), "%s", out);
	cr_assert_eq(logcap_count("refused a control connection from pid"), 1);
	cr_assert_eq(logcap_count(", uid 65534: only uid 0 or root may attach (a group may be let in: MPOPS_REGION_F_GROUP)"), 1);
	mpops_region_detach(r2);
}

/* Users and groups of the group tests (they need not exist). */
#define PRIMARY_UID "54320"
#define MEMBER_UID "54321"
#define OTHER_UID "54322"
#define ALLOWED_GID 5432
#define OTHER_GID "5433"
#define ALLOWED "5432"

Test(channel, a_member_of_the_allowed_group_attaches_and_another_group_is_refused_naming_the_rule)
{
	const char *prim[] = { rundir_path(), "grp", PRIMARY_UID ":" ALLOWED ":" ALLOWED ":666", NULL };
	const char *member[] = { "as", rundir_path(), "grp", MEMBER_UID ":" ALLOWED ":" ALLOWED, NULL };
	const char *other[] = { "as", rundir_path(), "grp", OTHER_UID ":" OTHER_GID ":" ALLOWED, NULL };
	const char *plain[] = { "as", rundir_path(), "grp", MEMBER_UID ":" ALLOWED ":-", NULL };
	int st;

	/* The primary is not root either: both ends check the other. */
	cr_assert_eq(chown(rundir_path(), 54320, ALLOWED_GID), 0);
	cr_assert_eq(chmod(rundir_path(), 0755), 0);
	peer_begin(&other_primary, "mp-primary", prim, "ready");

	st = peer_run("mp-secondary", member, out, sizeof(out));
	cr_assert(EXITED_OK(st) && strstr(out, "attach=0\n"), "%s", out);

	/* Another group: the socket (0666) lets it connect, the rule does not. */
	st = peer_run("mp-secondary", other, out, sizeof(out));
	cr_assert(EXITED_OK(st) && strstr(out, "attach=-13\n"), "%s", out);
	cr_assert(strstr(out, "the primary refused this process (uid " OTHER_UID ")"), "%s", out);

	/* A member that does not name the group keeps the default rule: it
	 * refuses a primary of another uid. */
	st = peer_run("mp-secondary", plain, out, sizeof(out));
	cr_assert(EXITED_OK(st) && strstr(out, "attach=-13\n"), "%s", out);
	cr_assert(strstr(out, "runs as uid " PRIMARY_UID ", not uid " MEMBER_UID " or root: refusing to attach"),
		  "%s", out);

	st = peer_end(&other_primary, SIGTERM);
	cr_assert(EXITED_OK(st), "%s", other_primary.out);
	cr_assert(strstr(other_primary.out, ", uid " OTHER_UID ": only uid " PRIMARY_UID ", root or members of group " ALLOWED " may attach\n"),
		  "%s", other_primary.out);
	cr_assert_null(strstr(other_primary.out, "uid " MEMBER_UID ": only"), "%s", other_primary.out);
}

/* A primary that is neither root nor a member of the group it would let
 * in cannot give it the socket: refused at create, one line. */
Test(channel, a_primary_outside_the_group_it_lets_in_is_refused_with_one_line)
{
	const char *prim[] = { rundir_path(), "grpx", PRIMARY_UID ":" OTHER_GID ":" ALLOWED, NULL };
	char o[4096];
	int st;

	cr_assert_eq(chown(rundir_path(), 54320, ALLOWED_GID), 0);
	cr_assert_eq(chmod(rundir_path(), 0755), 0);
	st = peer_run("mp-primary", prim, o, sizeof(o));
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %#x: %s", st, o);
	cr_assert(strstr(o, "region 'grpx': cannot give "), "%s", o);
	cr_assert(strstr(o, " to group " ALLOWED ": Operation not permitted: the primary must be root or a member of the group it lets attach"),
		  "%s", o);
	cr_assert_null(strstr(o, "ready"), "%s", o);
}

Test(channel, an_allowed_group_owns_the_socket_and_a_runtime_directory_the_primary_makes)
{
	char dir[160], path[200];
	struct mpops_region_opts o = {
		.sz = sizeof(o), .runtime_dir = dir, .flags = MPOPS_REGION_F_GROUP,
		.gid = ALLOWED_GID,
	};
	struct mpops_region *r2;
	struct stat st;

	mpops_region_detach(r);
	r = NULL;
	snprintf(dir, sizeof(dir), "%s/made/here", rundir_path());
	cr_assert_eq(mpops_region_create("grp2", &o, &r2), 0);
	snprintf(path, sizeof(path), "%s/grp2.sock", dir);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0660);
	cr_assert_eq(st.st_gid, ALLOWED_GID);
	cr_assert_eq(stat(dir, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0750);
	cr_assert_eq(st.st_gid, ALLOWED_GID);
	mpops_region_detach(r2);
}

Test(channel, socket_permissions_deny_other_uids)
{
	const char *args[] = { "nobody", rundir_path(), "chan", NULL };
	int st;

	chmod(rundir_path(), 0755);
	st = peer_run("mp-secondary", args, out, sizeof(out));
	cr_assert(EXITED_OK(st), "%s", out);
	cr_assert(strstr(out, "attach=-13"), "%s", out);
	cr_assert(strstr(out, "permission denied on "), "%s", out);
}

static int raw_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/chan.sock", rundir_path());
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

Test(channel, malformed_messages_drop_the_sender_not_the_primary)
{
	const char *args[] = { "attach", rundir_path(), "chan", NULL };
	static const uint32_t hdr_bad_len[8] = { 0x4843504d, 1 | (1 << 16), 1, 0, 1, 4000, 0, 0 };
	char junk[64];
	int fd, st;

	memset(junk, 0x5a, sizeof(junk));
	fd = raw_connect();
	cr_assert_eq(send(fd, junk, sizeof(junk), MSG_NOSIGNAL), (ssize_t)sizeof(junk));
	cr_assert_eq(recv(fd, junk, sizeof(junk), 0), 0);	/* closed on us */
	close(fd);
	fd = raw_connect();
	cr_assert_eq(send(fd, hdr_bad_len, sizeof(hdr_bad_len), MSG_NOSIGNAL), (ssize_t)sizeof(hdr_bad_len));
	cr_assert_eq(recv(fd, junk, sizeof(junk), 0), 0);
	close(fd);
	/* A request before the hand-shake. */
	{
		static const uint32_t ping_first[8] = { 0x4843504d, 1 | (1 << 16), 2, 0, 1, 0, 0, 0 };

		fd = raw_connect();
		cr_assert_eq(send(fd, ping_first, sizeof(ping_first), MSG_NOSIGNAL), (ssize_t)sizeof(ping_first));
		cr_assert_eq(recv(fd, junk, sizeof(junk), 0), 0);
		close(fd);
	}
	cr_assert_eq(logcap_count("malformed control message"), 3);
	/* The primary still serves everyone else. */
	st = peer_run("mp-secondary", args, out, sizeof(out));
	cr_assert(EXITED_OK(st), "%s", out);
}

/* This test process becomes the secondary of an mp-primary of region
 * @name: its pid and output fd, and the attached region. */
static struct mpops_region *secondary_of(const char *name, pid_t *pid, int *fd)
{
	const char *args[] = { rundir_path(), name, NULL };
	struct mpops_attach_opts ao = { .sz = sizeof(ao), .runtime_dir = rundir_path() };
	struct mpops_region *s = NULL;
	char buf[256];

	mpops_region_detach(r);
	r = NULL;
	*pid = peer_start("mp-primary", args, fd);
	cr_assert_gt(*pid, 0);
	cr_assert_eq(peer_wait_line(*fd, "ready", buf, sizeof(buf), 10000), 0, "%s", buf);
	cr_assert_eq(mpops_region_attach(name, &ao, &s), 0);
	return s;
}

Test(channel, primary_death_is_enotconn_for_the_secondary)
{
	struct mpops_msg req = { .type = DEMO_MSG_ECHO }, rep;
	struct mpops_region *s;
	char buf[256], line[96];
	int fd;
	pid_t pid;

	s = secondary_of("dies", &pid, &fd);
	cr_assert_eq(mpops_region_primary_pid(s), pid);
	cr_assert_eq(mpops_channel_register(s, DEMO_MSG_ECHO, echo, NULL), -EPERM);
	cr_assert_eq(mpops_region_primary_check(s), 0);
	cr_assert_eq(mpops_channel_request(s, &req, &rep, 0), -ENOTSUP);

	kill(pid, SIGKILL);
	buf[0] = '\0';
	peer_finish(pid, fd, buf, sizeof(buf), 5000);
	cr_assert_eq(mpops_channel_request(s, &req, &rep, 0), -ENOTCONN);
	cr_assert_eq(mpops_region_primary_check(s), -ENOTCONN);
	snprintf(line, sizeof(line), "its primary (pid %d) has exited", (int)pid);
	/* Said once, by whichever thread saw it first (the watcher may be in
	 * the middle of saying it). */
	cr_assert_eq(logcap_wait(line, 1, 2000), 1);
	usleep(50000);
	cr_assert_eq(logcap_count(line), 1);
	cr_assert_eq(mpops_region_detach(s), 0);
}

/* A primary-exit callback that tries to detach its own region. */
static _Atomic int detach_rc = 1;

static void detach_from_callback(struct mpops_region *s, void *arg)
{
	(void)arg;
	atomic_store(&detach_rc, mpops_region_detach(s));
}

/* Detaching from a primary-exit callback would join the thread it runs on:
 * refused, one line, nothing detached; from another thread it works. */
Test(channel, detach_from_a_primary_exit_callback_is_edeadlk_and_detaches_nothing)
{
	struct mpops_region *s;
	char buf[256];
	int fd;
	pid_t pid;

	s = secondary_of("gone", &pid, &fd);
	cr_assert_eq(mpops_region_on_primary_exit(s, detach_from_callback, NULL), 0);
	kill(pid, SIGKILL);
	buf[0] = '\0';
	peer_finish(pid, fd, buf, sizeof(buf), 5000);
	for (int i = 0; i < 200 && atomic_load(&detach_rc) == 1; i++)
		usleep(10000);
	cr_assert_eq(atomic_load(&detach_rc), -EDEADLK);
	cr_assert_eq(logcap_count("region 'gone': mpops_region_detach called from a primary-exit callback: detach from another thread"), 1);
	/* Still attached: its handle answers, and detach works from here. */
	cr_assert_eq(mpops_region_primary_check(s), -ENOTCONN);
	cr_assert_str_eq(mpops_region_name(s), "gone");
	cr_assert_eq(mpops_region_detach(s), 0);
}

/* ==== one peer cannot stop the others ==================================== */

static pid_t rogue_start(const char *cmd, const char *region, const char *n)
{
	const char *args[] = { cmd, rundir_path(), region, n, NULL };

	rogue = peer_start("chan-rogue", args, &rogue_fd);
	cr_assert_gt(rogue, 0);
	return rogue;
}

/* Let the rogue finish (killed after @timeout_ms); its exit status. */
static int rogue_finish(int timeout_ms)
{
	int st = peer_finish(rogue, rogue_fd, out, sizeof(out), timeout_ms);

	rogue = -1;
	return st;
}

/* Run the rogue to its end (it exits 0 when it could misbehave as told);
 * its pid, for the lines the primary logged about it. */
static pid_t rogue_run(const char *cmd, const char *region, const char *n)
{
	pid_t pid = rogue_start(cmd, region, n);
	int st = rogue_finish(15000);

	cr_assert(EXITED_OK(st), "%s", out);
	return pid;
}

/* The number after "key=" in @s, or LONG_MIN. */
static long val(const char *s, const char *key)
{
	char k[64];
	const char *p;

	snprintf(k, sizeof(k), "%s=", key);
	p = strstr(s, k);
	return p ? strtol(p + strlen(k), NULL, 10) : LONG_MIN;
}

static int logged_for(const char *fmt, pid_t pid)
{
	char line[160];

	snprintf(line, sizeof(line), fmt, (int)pid);
	return logcap_count(line);
}

Test(channel, a_client_that_never_reads_its_replies_is_closed_and_others_still_attach)
{
	pid_t pid = rogue_start("noread", "chan", NULL);
	int st;

	cr_assert_eq(peer_wait_line(rogue_fd, "stuffed", out, sizeof(out), 10000), 0, "%s", out);
	st = rogue_finish(15000);
	cr_assert(EXITED_OK(st), "%s", out);
	/* A real attach, within its 1.5 s, while the rogue was still connected. */
	cr_assert_eq(val(out, "attach"), 0, "%s", out);
	cr_assert_eq(val(out, "rogue-open"), 1, "%s", out);
	/* The rogue itself is closed once it left no room for 2 s. */
	cr_assert_lt(val(out, "closed ms"), 5000, "%s", out);
	cr_assert_eq(logged_for("pid %d does not read its replies", pid), 1);
}

Test(channel, a_reply_that_waits_for_room_keeps_its_fds_after_the_handler_returned)
{
	int st;

	rogue_start("noreadfds", "chan", NULL);
	cr_assert_eq(peer_wait_line(rogue_fd, "stuffed", out, sizeof(out), 10000), 0, "%s", out);
	/* The primary stopped reading the rogue: a reply waits for room.
	 * Its owner closes every fd the handler lent meanwhile. */
	for (int i = __atomic_load_n(&nheld, __ATOMIC_ACQUIRE); i-- > 0;)
		close(held[i]);
	__atomic_store_n(&nheld, 0, __ATOMIC_RELEASE);
	kill(rogue, SIGUSR1);
	st = rogue_finish(10000);
	cr_assert(EXITED_OK(st), "%s", out);
	/* Every request answered, each reply with its own eventfd, the one
	 * that waited too; the connection stayed. */
	cr_assert_eq(val(out, "replies"), val(out, "stuffed requests"), "%s", out);
	cr_assert_eq(val(out, "good"), val(out, "replies"), "%s", out);
	cr_assert_eq(val(out, "eof"), 0, "%s", out);
	cr_assert_eq(logcap_count("cannot keep the fds"), 0);
}

Test(channel, a_request_sent_slowly_is_closed_after_the_peer_timeout_and_others_attach_meanwhile)
{
	pid_t pid = rogue_run("slowfds", "chan", "1000");

	cr_assert_eq(val(out, "attach"), 0, "%s", out);
	cr_assert_eq(val(out, "rogue-open"), 1, "%s", out);
	/* Closed 2 s after its first record: not one 1.5 s wait per record. */
	cr_assert_lt(val(out, "closed ms"), 4000, "%s", out);
	cr_assert_geq(val(out, "closed ms"), MPOPS_CHANNEL_PEER_TIMEOUT_MS - 100, "%s", out);
	cr_assert_eq(logged_for("pid %d announced 1000 fds in request 0x1001 but sent", pid), 1);
}

Test(channel, a_request_announcing_absurd_fd_counts_is_closed_at_its_first_record)
{
	pid_t pid = rogue_run("slowfds", "chan", "60000");

	cr_assert_lt(val(out, "closed ms"), 300, "%s", out);
	cr_assert_eq(val(out, "attach"), 0, "%s", out);
	cr_assert_eq(logged_for("pid %d announced 60000 fds in request 0x1001, more than the 1024", pid), 1);
}

Test(channel, a_request_with_more_fds_than_the_primary_takes_is_e2big_at_the_sender)
{
	const char *args[] = { "toomany", rundir_path(), "chan", NULL };
	int st = peer_run("mp-secondary", args, out, sizeof(out));

	cr_assert(EXITED_OK(st), "%s", out);
	cr_assert(strstr(out, "toomany=-7 then=0"), "%s", out);	/* -E2BIG, still connected */
	cr_assert(strstr(out, "carries 1025 fds, more than the 1024 the primary accepts"), "%s", out);
}

Test(channel, a_peer_of_another_uid_is_refused_before_its_payload_is_read)
{
	struct mpops_region_opts o = {
		.sz = sizeof(o), .runtime_dir = rundir_path(), .socket_mode = 0666,
	};
	pid_t pid;

	/* One region per process: make this one with a world-writable socket. */
	mpops_region_detach(r);
	r = NULL;
	chmod(rundir_path(), 0755);
	cr_assert_eq(mpops_region_create("chan3", &o, &r), 0);
	/* It announces 1000 fds, sends 250, and waits: the refusal does not. */
	pid = rogue_run("refused", "chan3", "1000");
	cr_assert_eq(val(out, "reply"), -EACCES, "%s", out);
	cr_assert_lt(val(out, "ms"), 1000, "%s", out);
	cr_assert_eq(logged_for("refused a control connection from pid %d", pid), 1);
	cr_assert_eq(logcap_count("malformed"), 0);
}

Test(channel, a_connection_without_a_hand_shake_is_closed_after_the_peer_timeout)
{
	pid_t pid = rogue_run("idle", "chan", NULL);

	cr_assert_lt(val(out, "closed ms"), 4000, "%s", out);
	cr_assert_eq(logged_for("pid %d has not completed a hand-shake within 2000 ms of connecting", pid), 1);
}

static long cpu_ms(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000L +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
}

Test(channel, a_connection_flood_past_rlimit_nofile_does_not_spin_and_others_still_attach)
{
	struct rlimit rl;
	int maxfd = 0;
	long before, used;
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	/* Leave this process (the primary) about 24 free fds. */
	cr_assert_not_null(d);
	while ((e = readdir(d)))
		if (atoi(e->d_name) > maxfd)
			maxfd = atoi(e->d_name);
	closedir(d);
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &nofile_saved), 0);
	rl = nofile_saved;
	rl.rlim_cur = (rlim_t)maxfd + 1 + 24;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	nofile_lowered = 1;

	rogue_start("flood", "chan", "200");
	cr_assert_eq(peer_wait_line(rogue_fd, "flooding", out, sizeof(out), 10000), 0, "%s", out);
	/* The process's CPU over one second: its main thread sleeps, so this
	 * is the channel thread at work on the flood (~20 ms; a spin, 300-1000). */
	before = cpu_ms();
	usleep(1000 * 1000);
	used = cpu_ms() - before;
	cr_assert_lt(used, 150, "the primary used %ld ms of CPU in 1 s of flood", used);
	cr_assert_eq(peer_wait_line(rogue_fd, "attach=", out, sizeof(out), 10000), 0, "%s", out);
	cr_assert_eq(val(out, "attach"), 0, "%s", out);
	cr_assert_eq(logcap_count("out of file descriptors accepting a control connection from pid"), 1);
	kill(rogue, SIGTERM);
	rogue_finish(5000);
}

/*
 * chan-rogue attaches (within 3 s) while this process, the primary, may
 * open no fd below @nofile; after 1 s the limit is restored. Returns the
 * CPU the primary used in that second.
 */
static long attach_while_out_of_fds(rlim_t nofile)
{
	struct rlimit rl;
	long before, used;
	int st;

	rogue_start("late", "chan", NULL);
	cr_assert_eq(peer_wait_line(rogue_fd, "ready", out, sizeof(out), 10000), 0, "%s", out);
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &nofile_saved), 0);
	rl = nofile_saved;
	rl.rlim_cur = nofile;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	nofile_lowered = 1;
	kill(rogue, SIGUSR1);
	before = cpu_ms();
	usleep(1000 * 1000);
	used = cpu_ms() - before;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &nofile_saved), 0);
	nofile_lowered = 0;
	st = rogue_finish(10000);
	cr_assert(EXITED_OK(st), "%s", out);
	return used;
}

/* The lowest fd this process has free: the limit at which it has none. */
static int lowest_free_fd(void)
{
	int fd = fcntl(0, F_DUPFD_CLOEXEC, 0);

	close(fd);
	cr_assert_geq(fd, 3);
	return fd;
}

Test(channel, out_of_fds_with_every_connection_attached_refuses_the_new_one_at_once)
{
	long used = attach_while_out_of_fds((rlim_t)lowest_free_fd());

	/* The reserve fd accepted it, to close it: the secondary hears at once. */
	cr_assert_lt(used, 150, "the primary used %ld ms of CPU in 1 s without fds", used);
	cr_assert_eq(val(out, "attach"), -ENOTCONN, "%s", out);
	cr_assert_lt(val(out, "ms"), 1000, "%s", out);
	cr_assert_eq(logcap_count("out of file descriptors accepting a control connection from pid"), 1);
	cr_assert_eq(logcap_count("refused it: every connection is attached"), 1);
}

Test(channel, accept_failing_even_with_the_reserve_fd_backs_off_and_recovers)
{
	/* fds 0-2 only: the reserve, when given up, frees a slot above the
	 * limit, so accept keeps failing. */
	long used = attach_while_out_of_fds(3);

	cr_assert_lt(used, 150, "the primary used %ld ms of CPU in 1 s without fds", used);
	/* Within 100 ms of fds being back, the waiting secondary is served. */
	cr_assert_eq(val(out, "attach"), 0, "%s", out);
	cr_assert_eq(logcap_count("cannot accept control connections: Too many open files: retrying every 100 ms"), 1);
}

Test(channel, poll_failing_for_lack_of_fds_backs_off_and_recovers)
{
	/* No fd at all: poll() of the socket and the stop pipe is EINVAL. */
	long used = attach_while_out_of_fds(0);

	cr_assert_lt(used, 150, "the primary used %ld ms of CPU in 1 s without fds", used);
	cr_assert_eq(val(out, "attach"), 0, "%s", out);
	cr_assert_eq(logcap_count("the control thread cannot poll 2 fds: Invalid argument: retrying every 100 ms"), 1);
}

static int sockets_open(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	char path[300], link[64];
	int n = 0;

	while ((e = readdir(d))) {
		ssize_t k;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		k = readlink(path, link, sizeof(link) - 1);
		if (k > 0 && strncmp(link, "socket:", 7) == 0)
			n++;
	}
	closedir(d);
	return n;
}

Test(channel, a_connection_flood_keeps_at_most_the_connection_limit_and_others_still_attach)
{
	int most = 0;

	rogue_start("flood", "chan", "400");
	cr_assert_eq(peer_wait_line(rogue_fd, "flooding", out, sizeof(out), 10000), 0, "%s", out);
	for (int i = 0; i < 10; i++) {
		int n = sockets_open();

		most = n > most ? n : most;
		usleep(50 * 1000);
	}
	/* The connections kept, the listening socket, the log's few. */
	cr_assert_leq(most, MPOPS_CHANNEL_CONN_MAX + 4, "%d sockets open", most);
	cr_assert_eq(peer_wait_line(rogue_fd, "attach=", out, sizeof(out), 10000), 0, "%s", out);
	cr_assert_eq(val(out, "attach"), 0, "%s", out);
	cr_assert_eq(logcap_count("control connections, the most it keeps, and pid"), 1);
	kill(rogue, SIGTERM);
	rogue_finish(5000);
}

Test(channel, attach_gives_up_within_its_timeout_when_the_primary_accepts_no_connection,
     .timeout = 15)
{
	struct mpops_attach_opts ao = {
		.sz = sizeof(ao), .runtime_dir = rundir_path(), .timeout_ms = 500,
	};
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct mpops_region *s = NULL;
	struct timespec t0, t1;
	int lfd, fill[8], nfill = 0, rc;
	long ms;

	/* This process is a secondary here; a socket that never accepts is the
	 * "primary", its backlog full. */
	mpops_region_detach(r);
	r = NULL;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/stuck.sock", rundir_path());
	lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(lfd, 0), 0);
	while (nfill < 8) {
		int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			close(fd);
			break;
		}
		fill[nfill++] = fd;
	}
	cr_assert_lt(nfill, 8, "the backlog never filled");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = mpops_region_attach("stuck", &ao, &s);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	for (int i = 0; i < nfill; i++)
		close(fill[i]);
	close(lfd);
	cr_assert_eq(rc, -ETIMEDOUT);
	cr_assert_geq(ms, 400);
	cr_assert_lt(ms, 1500, "attach took %ld ms", ms);
	cr_assert_eq(logcap_count("the primary accepted no connection on"), 1);
}

/* A "primary" that answers one hand-shake with @nfds memfds of @sizes,
 * announcing @total bytes, then waits for the peer to hang up. */
struct forged {
	int lfd;
	unsigned nfds;
	size_t sizes[3];
	uint64_t total;
};

static void *forged_primary(void *arg)
{
	struct forged *f = arg;
	struct hello_reply rep = { .abi_version = MPOPS_ABI_VERSION,
				   .layout_hash = region_layout_hash(), .size = f->total,
				   .primary_pid = getpid() };
	struct wire_hdr h, rh = { .magic = WIRE_MAGIC, .version = WIRE_VERSION,
				  .kind = WIRE_REPLY, .len = sizeof(rep) };
	char buf[512];
	int c = accept(f->lfd, NULL, NULL), fds[3];

	if (c < 0)
		return NULL;
	if (recv(c, buf, sizeof(buf), 0) >= (ssize_t)sizeof(h)) {
		memcpy(&h, buf, sizeof(h));
		rh.type = h.type;
		rh.seq = h.seq;
		rh.nfds = f->nfds;
		for (unsigned i = 0; i < f->nfds; i++) {
			fds[i] = memfd_create("forged", MFD_CLOEXEC);
			if (ftruncate(fds[i], (off_t)f->sizes[i]) < 0)
				break;
		}
		chan_send_rec(c, &rh, &rep, fds, f->nfds);
		for (unsigned i = 0; i < f->nfds; i++)
			close(fds[i]);
		while (recv(c, buf, sizeof(buf), 0) > 0)
			;
	}
	close(c);
	return NULL;
}

/* Attach to a forged primary that sends what @f says: @return attach's result. */
static int attach_forged(struct forged *f)
{
	struct mpops_attach_opts ao = {
		.sz = sizeof(ao), .runtime_dir = rundir_path(), .timeout_ms = 2000,
	};
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct mpops_region *s = NULL;
	pthread_t t;
	int rc;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/forged.sock", rundir_path());
	unlink(sa.sun_path);
	f->lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	cr_assert_eq(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(f->lfd, 4), 0);
	cr_assert_eq(pthread_create(&t, NULL, forged_primary, f), 0);
	rc = mpops_region_attach("forged", &ao, &s);
	cr_assert_null(s);
	pthread_join(t, NULL);
	close(f->lfd);
	unlink(sa.sun_path);
	return rc;
}

/* A primary of this version whose hand-shake does not carry the region's
 * two memory objects (a forged or broken peer): refused, one line each. */
Test(channel, a_hand_shake_without_the_regions_two_parts_is_refused_with_one_line)
{
	struct forged one = { .nfds = 1, .sizes = { 4u << 20 }, .total = 4u << 20 };
	struct forged odd = { .nfds = 2, .sizes = { 1u << 20, 1u << 20 }, .total = 4u << 20 };

	mpops_region_detach(r);
	r = NULL;
	cr_assert_eq(attach_forged(&one), -EBADMSG);
	cr_assert_eq(logcap_count("region 'forged': hand-shake reply carries 1 fds, expected the region's two"), 1);
	cr_assert_eq(attach_forged(&odd), -EPROTO);
	cr_assert_eq(logcap_count("region 'forged': the fds received from the primary are not the region (sizes 1048576 and 1048576, expected 4194304 in all)"), 1);
}

/* The signals blocked by this process's thread named @comm; -1 if none is. */
static long long thread_sigblk(const char *comm)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	long long mask = -1;

	cr_assert_not_null(d);
	while (mask < 0 && (e = readdir(d))) {
		char path[300], name[64] = "", line[256];
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		if (!(f = fopen(path, "r")))
			continue;
		if (fgets(name, sizeof(name), f))
			name[strcspn(name, "\n")] = '\0';
		fclose(f);
		if (strcmp(name, comm) != 0)
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/status", e->d_name);
		cr_assert_not_null(f = fopen(path, "r"));
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "SigBlk: %llx", &mask) == 1)
				break;
		fclose(f);
	}
	closedir(d);
	return mask;
}

#define SIGBIT(s) (1LL << ((s) - 1))

/*
 * Regression: the library's threads took signals meant for the application:
 * a secondary whose main thread waited in pause() for SIGTERM waited
 * forever when the primary-death watcher took it (proc::clean_exit_is_not_a_death
 * failed in CI). Both threads now block every signal.
 */
Test(channel, the_library_threads_take_no_signal_meant_for_the_application)
{
	const char *prim[] = { rundir_path(), "sig", NULL };
	struct mpops_attach_opts ao = { .sz = sizeof(ao), .runtime_dir = rundir_path() };
	const long long want = SIGBIT(SIGTERM) | SIGBIT(SIGINT) | SIGBIT(SIGUSR1) | SIGBIT(SIGHUP);
	struct mpops_region *s;
	long long m;

	/* The primary's control thread (this process is the suite's primary). */
	m = thread_sigblk("mpops-chan");
	cr_assert_neq(m, -1, "no mpops-chan thread");
	cr_assert_eq(m & want, want, "mpops-chan blocks %#llx", m);
	/* A secondary's watcher: this process attaches to another primary. */
	mpops_region_detach(r);
	r = NULL;
	peer_begin(&other_primary, "mp-primary", prim, "ready");
	cr_assert_eq(mpops_region_attach("sig", &ao, &s), 0);
	m = thread_sigblk("mpops-watch");
	cr_assert_neq(m, -1, "no mpops-watch thread");
	cr_assert_eq(m & want, want, "mpops-watch blocks %#llx", m);
	/* The application's own thread still takes them. */
	cr_assert_eq(thread_sigblk("test_channel") & want, 0);
	cr_assert_eq(mpops_region_detach(s), 0);
}
