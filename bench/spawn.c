/* SPDX-License-Identifier: MIT */
/*
 * bench-spawn: runs one command and reports what it cost, for bench/bench.py.
 *
 * Contract:
 * - `bench-spawn [-r FD] TIMEOUT_MS CMD [ARG...]` forks, execs CMD (PATH search) with our stdin,
 *   stdout and stderr, and reaps it with wait4(). Then it writes one line to FD (> 2, made
 *   close-on-exec, so CMD does not inherit it; default: stderr):
 *     wall_ns=N user_us=N sys_us=N maxrss_kib=N status=S
 *   where wall_ns runs from just before fork() to wait4()'s return, the rest is the child's
 *   rusage, and S is the exit code, or -SIGNO when a signal killed it. Exit status 0 once the
 *   line is written (whatever CMD did), 1 on our own failure, 2 on bad usage.
 * - The child is SIGKILLed after TIMEOUT_MS, or as soon as we get SIGTERM, SIGINT or SIGHUP
 *   (how the caller stops a guest at a point of its choosing).
 * - Why not spawn from Python: ru_maxrss survives execve(), so a child forked (or vforked) from a
 *   16 MiB interpreter reports at least 16 MiB. Forked from this small program, the pre-exec
 *   image is a few hundred KiB, below what any VMM uses.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>

/* Written by the signal handlers only; sig_atomic_t as the standard requires. */
static volatile sig_atomic_t child_pid;

static void on_signal(int sig)
{
	(void)sig;
	if (child_pid > 0)
		kill((pid_t)child_pid, SIGKILL);
}

static long long ns_of(const struct timespec *t)
{
	return (long long)t->tv_sec * 1000000000LL + t->tv_nsec;
}

static long long us_of(const struct timeval *t)
{
	return (long long)t->tv_sec * 1000000LL + t->tv_usec;
}

int main(int argc, char **argv)
{
	static const int stop_signals[] = {SIGALRM, SIGTERM, SIGINT, SIGHUP};
	struct sigaction sa;
	struct itimerval it;
	struct timespec t0, t1;
	struct rusage ru;
	char *end;
	long timeout_ms;
	int status, report = 2, n;
	pid_t pid;

	if (argc > 2 && strcmp(argv[1], "-r") == 0) {
		long fd = strtol(argv[2], &end, 10);
		if (*end || fd < 3 || fd > 1023 || fcntl((int)fd, F_SETFD, FD_CLOEXEC) < 0) {
			fprintf(stderr, "bench-spawn: -r '%s': not an open descriptor above 2\n",
				argv[2]);
			return 2;
		}
		report = (int)fd;
		argc -= 2;
		argv += 2;
	}
	if (argc < 3) {
		fprintf(stderr, "usage: bench-spawn [-r FD] TIMEOUT_MS CMD [ARG...]\n");
		return 2;
	}
	timeout_ms = strtol(argv[1], &end, 10);
	if (*end || timeout_ms <= 0 || timeout_ms > 24L * 3600 * 1000) {
		fprintf(stderr, "bench-spawn: bad timeout '%s' (milliseconds)\n", argv[1]);
		return 2;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(stop_signals) / sizeof(stop_signals[0]); i++)
		if (sigaction(stop_signals[i], &sa, NULL) < 0) {
			perror("bench-spawn: sigaction");
			return 1;
		}

	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid = fork();
	if (pid < 0) {
		perror("bench-spawn: fork");
		return 1;
	}
	if (pid == 0) {
		sa.sa_handler = SIG_DFL;
		for (size_t i = 0; i < sizeof(stop_signals) / sizeof(stop_signals[0]); i++)
			sigaction(stop_signals[i], &sa, NULL);
		execvp(argv[2], argv + 2);
		fprintf(stderr, "bench-spawn: %s: %s\n", argv[2], strerror(errno));
		_exit(127);
	}
	child_pid = pid;
	memset(&it, 0, sizeof(it));
	it.it_value.tv_sec = timeout_ms / 1000;
	it.it_value.tv_usec = (timeout_ms % 1000) * 1000;
	if (setitimer(ITIMER_REAL, &it, NULL) < 0) {
		perror("bench-spawn: setitimer");
		kill(pid, SIGKILL);
	}
	while (wait4(pid, &status, 0, &ru) < 0) {
		if (errno != EINTR) {
			perror("bench-spawn: wait4");
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	child_pid = 0;

	n = dprintf(report, "wall_ns=%lld user_us=%lld sys_us=%lld maxrss_kib=%ld status=%d\n",
		    ns_of(&t1) - ns_of(&t0), us_of(&ru.ru_utime), us_of(&ru.ru_stime), ru.ru_maxrss,
		    WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status));
	return n > 0 ? 0 : 1;
}
