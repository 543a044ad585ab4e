/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "fake_platform.h"
#include "devices/legacy/uart8250.h"
#include "machine/console.h"
#include "memory/layout.h"

/* ---- the escape filter, as a pure function ---- */

static size_t feed(struct console_esc *e, const char *in, size_t n, char *out, bool *quit)
{
	return console_esc_feed(e, (const uint8_t *)in, n, (uint8_t *)out, quit);
}

#define FEED(e, lit, out, quit) feed((e), (lit), sizeof(lit) - 1, (out), (quit))

static void test_esc_parser(void **state)
{
	(void)state;
	struct console_esc e;
	char out[64];
	bool quit = false;
	size_t n;

	console_esc_init(&e, CONSOLE_ESCAPE_DEFAULT);
	n = FEED(&e, "abc\r", out, &quit);
	assert_int_equal(n, 4);
	assert_memory_equal(out, "abc\r", 4);
	assert_false(quit);

	/* Ctrl-A Ctrl-A: one literal Ctrl-A. */
	n = FEED(&e, "a\x01\x01z", out, &quit);
	assert_int_equal(n, 3);
	assert_memory_equal(out, "a\x01z", 3);
	assert_false(quit);

	/* Ctrl-A + other byte: both pass. */
	n = FEED(&e, "\x01q", out, &quit);
	assert_int_equal(n, 2);
	assert_memory_equal(out, "\x01q", 2);
	assert_false(quit);

	/* Split across reads, including releasing a held escape (n + 1 output bytes). */
	n = FEED(&e, "ab\x01", out, &quit);
	assert_int_equal(n, 2);
	n = FEED(&e, "cd", out, &quit);
	assert_int_equal(n, 3);
	assert_memory_equal(out,
			    "\x01"
			    "cd",
			    3);
	n = FEED(&e, "\x01", out, &quit);
	assert_int_equal(n, 0);
	n = FEED(&e, "\x01", out, &quit);
	assert_int_equal(n, 1);
	assert_int_equal(out[0], 0x01);
	assert_false(quit);

	/* Quit: bytes before it are kept, bytes after it are not consumed. */
	n = FEED(&e, "ok\x01xafter", out, &quit);
	assert_true(quit);
	assert_int_equal(n, 2);
	assert_memory_equal(out, "ok", 2);

	console_esc_init(&e, CONSOLE_ESCAPE_DEFAULT);
	quit = false;
	n = FEED(&e, "\x01", out, &quit);
	n = FEED(&e, "X", out, &quit);
	assert_true(quit);
	assert_int_equal(n, 0);

	/* Disabled: everything passes. */
	console_esc_init(&e, CONSOLE_ESCAPE_NONE);
	quit = false;
	n = FEED(&e, "\x01x\x01\x01", out, &quit);
	assert_false(quit);
	assert_int_equal(n, 4);
	assert_memory_equal(out, "\x01x\x01\x01", 4);

	/* Another escape byte (Ctrl-]). */
	console_esc_init(&e, 0x1d);
	n = FEED(&e, "\x01x", out, &quit);
	assert_false(quit);
	assert_int_equal(n, 2);
	n = FEED(&e, "\x1d\x1d", out, &quit);
	assert_int_equal(n, 1);
	assert_int_equal(out[0], 0x1d);
	n = FEED(&e, "\x1dx", out, &quit);
	assert_true(quit);
	assert_int_equal(n, 0);
}

/* ---- the console on pipes ---- */

struct t {
	struct fake_platform fp;
	struct uart8250 u;
	struct evloop loop;
	struct console con;
	int in[2], out[2];
	unsigned quits;
};

static void on_quit(void *ctx)
{
	struct t *t = ctx;
	t->quits++;
}

static void out_b(struct t *t, unsigned reg, uint8_t v)
{
	assert_true(bus_write(&t->fp.pio, PORT_COM1 + reg, &v, 1));
}

static uint8_t in_b(struct t *t, unsigned reg)
{
	uint8_t v = 0;
	assert_true(bus_read(&t->fp.pio, PORT_COM1 + reg, &v, 1));
	return v;
}

static void base_setup(struct t *t)
{
	fake_platform_init(&t->fp, 0, 4096);
	assert_int_equal(uart_init(&t->u, &t->fp.plat, NULL, NULL), 0);
	assert_int_equal(evloop_init(&t->loop), 0);
	/* FIFOs on, as Linux runs them. */
	out_b(t, UART_FCR, UART_FCR_ENABLE);
}

static void base_teardown(struct t *t)
{
	evloop_fini(&t->loop);
	uart_fini(&t->u);
	fake_platform_fini(&t->fp);
}

static int con_start(struct t *t, int in_fd, int out_fd, int escape)
{
	struct console_config cfg = {
	    .in_fd = in_fd, .out_fd = out_fd, .escape = escape, .quit = on_quit, .quit_ctx = t};
	return console_init(&t->con, &cfg, &t->u, &t->loop);
}

static int setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));
	base_setup(t);
	assert_int_equal(pipe2(t->in, O_CLOEXEC), 0);
	assert_int_equal(pipe2(t->out, O_CLOEXEC), 0);
	assert_int_equal(con_start(t, t->in[0], t->out[1], CONSOLE_ESCAPE_DEFAULT), 0);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct t *t = *state;
	console_fini(&t->con);
	for (int i = 0; i < 2; i++) {
		if (t->in[i] >= 0)
			close(t->in[i]);
		close(t->out[i]);
	}
	base_teardown(t);
	free(t);
	return 0;
}

/* Run the I/O loop on this thread until it goes quiet. */
static void run(struct t *t)
{
	for (int i = 0; i < 64; i++) {
		int n = evloop_run_once(&t->loop, i == 0 ? 200 : 5);
		assert_true(n >= 0);
		if (n == 0)
			return;
	}
	fail_msg("event loop does not go quiet");
}

static void put(struct t *t, const void *buf, size_t len)
{
	assert_int_equal(write(t->in[1], buf, len), (ssize_t)len);
}

/* Drain what the guest can read now. */
static size_t guest_read(struct t *t, uint8_t *buf, size_t max)
{
	size_t n = 0;
	while (n < max && (in_b(t, UART_LSR) & UART_LSR_DR))
		buf[n++] = in_b(t, UART_RBR);
	return n;
}

static void test_forward(void **state)
{
	struct t *t = *state;
	uint8_t buf[32];
	put(t, "hello", 5);
	run(t);
	assert_int_equal(guest_read(t, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "hello", 5);
	assert_false(console_input_done(&t->con));
}

static void test_backpressure(void **state)
{
	struct t *t = *state;
	uint8_t data[1000], got[1000];
	size_t n = 0;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(' ' + i % 90);
	put(t, data, sizeof(data));
	run(t);
	/* The UART holds 16 bytes; the rest waits in the console or the pipe. */
	assert_int_equal(guest_read(t, got, sizeof(got)), 16);
	n = 16;
	for (int rounds = 0; n < sizeof(data); rounds++) {
		assert_true(rounds < 200);
		run(t); /* the drained FIFO kicked the console */
		size_t k = guest_read(t, got + n, sizeof(got) - n);
		assert_true(k <= UART_FIFO_SIZE);
		n += k;
	}
	assert_memory_equal(got, data, sizeof(data));
}

static void test_eof(void **state)
{
	struct t *t = *state;
	uint8_t buf[8];
	put(t, "ab", 2);
	close(t->in[1]);
	t->in[1] = -1;
	run(t);
	assert_true(console_input_done(&t->con));
	assert_int_equal(guest_read(t, buf, sizeof(buf)), 2);
	/* Nothing left to dispatch: EOF does not make the loop spin. */
	assert_int_equal(evloop_run_once(&t->loop, 50), 0);
	assert_int_equal(t->quits, 0);
	/* Output still works after input is gone. */
	out_b(t, UART_RBR, '!');
	uart_flush(&t->u);
	assert_int_equal(read(t->out[0], buf, sizeof(buf)), 1);
	assert_int_equal(buf[0], '!');
}

static void test_quit(void **state)
{
	struct t *t = *state;
	uint8_t buf[16];
	put(t, "ab\x01xcd", 6);
	run(t);
	assert_int_equal(t->quits, 1);
	assert_true(console_input_done(&t->con));
	assert_int_equal(guest_read(t, buf, sizeof(buf)), 2);
	assert_memory_equal(buf, "ab", 2);
	put(t, "\x01x", 2);
	run(t);
	assert_int_equal(t->quits, 1);
	assert_int_equal(guest_read(t, buf, sizeof(buf)), 0);
}

static void test_output(void **state)
{
	struct t *t = *state;
	char buf[16];
	out_b(t, UART_RBR, 'h');
	out_b(t, UART_RBR, 'i');
	in_b(t, UART_LSR);
	assert_int_equal(read(t->out[0], buf, sizeof(buf)), 2);
	assert_memory_equal(buf, "hi", 2);
}

struct reader {
	int fd;
	uint8_t *buf;
	size_t want, got;
};

static void *slow_reader(void *arg)
{
	struct reader *r = arg;
	usleep(50000); /* let the writer hit a full pipe */
	while (r->got < r->want) {
		ssize_t n = read(r->fd, r->buf + r->got, MIN(r->want - r->got, 1000));
		if (n <= 0)
			break;
		r->got += (size_t)n;
		usleep(1000);
	}
	return NULL;
}

/* A non-blocking output that fills up: nothing is lost, order is kept. */
static void test_output_eagain(void **state)
{
	struct t *t = *state;
	enum { N = 200000 };
	uint8_t *got = calloc(1, N);
	struct reader r = {.fd = t->out[0], .buf = got, .want = N};
	pthread_t th;

	assert_true(fcntl(t->out[1], F_SETPIPE_SZ, 4096) > 0);
	assert_int_equal(fcntl(t->out[1], F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(pthread_create(&th, NULL, slow_reader, &r), 0);
	for (unsigned i = 0; i < N; i++)
		out_b(t, UART_RBR, (uint8_t)(i * 7));
	uart_flush(&t->u);
	pthread_join(th, NULL);
	assert_int_equal(r.got, N);
	for (unsigned i = 0; i < N; i++)
		assert_int_equal(got[i], (uint8_t)(i * 7));
	free(got);
}

static void test_output_closed(void **state)
{
	struct t *t = *state;
	signal(SIGPIPE, SIG_IGN);
	close(t->out[0]);
	t->out[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	out_b(t, UART_RBR, 'x');
	uart_flush(&t->u); /* EPIPE: output discarded, the VM goes on */
	out_b(t, UART_RBR, 'y');
	uart_flush(&t->u);
	signal(SIGPIPE, SIG_DFL);
}

/* ---- other kinds of input ---- */

static void test_devnull_and_closed(void **state)
{
	(void)state;
	struct t t = {.quits = 0};
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	base_setup(&t);
	assert_int_equal(con_start(&t, fd, -1, CONSOLE_ESCAPE_DEFAULT), 0);
	run(&t);
	assert_true(console_input_done(&t.con));
	assert_int_equal(evloop_run_once(&t.loop, 30), 0);
	console_fini(&t.con);
	close(fd);

	/* An fd that is not open: no input at all. */
	assert_int_equal(con_start(&t, 987, -1, CONSOLE_ESCAPE_DEFAULT), 0);
	assert_true(console_input_done(&t.con));
	console_fini(&t.con);
	assert_int_equal(con_start(&t, -1, -1, CONSOLE_ESCAPE_DEFAULT), 0);
	assert_true(console_input_done(&t.con));
	console_fini(&t.con);
	struct console_config bad = {.in_fd = -1, .out_fd = -1, .escape = 256};
	assert_int_equal(console_init(&t.con, &bad, &t.u, &t.loop), -EINVAL);
	base_teardown(&t);
}

static void test_regular_file(void **state)
{
	(void)state;
	struct t t = {.quits = 0};
	uint8_t data[300], got[300];
	size_t n = 0;
	FILE *f = tmpfile();

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i & 0x7f) == 1 ? 2 : (uint8_t)(i & 0x7f);
	assert_int_equal(fwrite(data, 1, sizeof(data), f), sizeof(data));
	fflush(f);
	rewind(f);
	base_setup(&t);
	assert_int_equal(con_start(&t, fileno(f), -1, CONSOLE_ESCAPE_DEFAULT), 0);
	for (int rounds = 0; n < sizeof(data); rounds++) {
		assert_true(rounds < 100);
		run(&t);
		n += guest_read(&t, got + n, sizeof(got) - n);
	}
	assert_memory_equal(got, data, sizeof(data));
	run(&t);
	assert_true(console_input_done(&t.con));
	console_fini(&t.con);
	base_teardown(&t);
	fclose(f);
}

/* ---- terminals ---- */

static int open_pty(int *master, int *slave)
{
	*master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (*master < 0 || grantpt(*master) || unlockpt(*master))
		return -1;
	*slave = open(ptsname(*master), O_RDWR | O_NOCTTY | O_CLOEXEC);
	return *slave < 0 ? -1 : 0;
}

static bool is_cooked(int fd)
{
	struct termios tio;
	assert_int_equal(tcgetattr(fd, &tio), 0);
	return (tio.c_lflag & ICANON) && (tio.c_lflag & ECHO) && (tio.c_lflag & ISIG);
}

static bool is_raw(int fd)
{
	struct termios tio;
	assert_int_equal(tcgetattr(fd, &tio), 0);
	return !(tio.c_lflag & (ICANON | ECHO | ISIG | IEXTEN)) && !(tio.c_oflag & OPOST) &&
	       !(tio.c_iflag & (ICRNL | IXON)) && tio.c_cc[VMIN] == 1;
}

static void test_tty_raw_and_restore(void **state)
{
	(void)state;
	struct t t = {.quits = 0};
	struct console other;
	int master, slave;
	uint8_t buf[8];

	if (open_pty(&master, &slave))
		skip();
	assert_true(is_cooked(slave));
	base_setup(&t);
	assert_int_equal(con_start(&t, slave, slave, CONSOLE_ESCAPE_DEFAULT), 0);
	assert_true(is_raw(slave));
	/* One terminal owner at a time. */
	struct console_config cfg = {.in_fd = slave, .out_fd = -1, .escape = 1};
	assert_int_equal(console_init(&other, &cfg, &t.u, &t.loop), -EBUSY);

	/* Raw: CR is not turned into LF, Ctrl-C is a byte for the guest, nothing echoes. */
	assert_int_equal(write(master, "a\r\x03", 3), 3);
	run(&t);
	assert_int_equal(guest_read(&t, buf, sizeof(buf)), 3);
	assert_memory_equal(buf, "a\r\x03", 3);
	/* Output is not post-processed either. */
	out_b(&t, UART_RBR, '\n');
	uart_flush(&t.u);
	assert_int_equal(read(master, buf, sizeof(buf)), 1);
	assert_int_equal(buf[0], '\n');

	console_restore_terminal();
	assert_true(is_cooked(slave));
	console_restore_terminal(); /* idempotent */
	assert_true(is_cooked(slave));
	console_fini(&t.con);
	assert_true(is_cooked(slave));

	/* console_fini restores too, and the terminal can be taken again. */
	assert_int_equal(con_start(&t, slave, -1, CONSOLE_ESCAPE_DEFAULT), 0);
	assert_true(is_raw(slave));
	console_fini(&t.con);
	assert_true(is_cooked(slave));
	base_teardown(&t);
	close(slave);
	close(master);
}

enum child_end { END_SIGTERM, END_SIGINT, END_EXIT };

static void child_run(const char *slave_path, enum child_end how)
{
	struct t t = {.quits = 0};
	int slave = open(slave_path, O_RDWR | O_NOCTTY);
	if (slave < 0)
		_exit(100);
	base_setup(&t);
	if (con_start(&t, slave, -1, CONSOLE_ESCAPE_DEFAULT) || !is_raw(slave))
		_exit(101);
	switch (how) {
	case END_SIGTERM:
		raise(SIGTERM);
		break;
	case END_SIGINT:
		kill(getpid(), SIGINT);
		break;
	case END_EXIT:
		exit(7); /* no console_fini: the atexit hook restores */
	}
	_exit(102);
}

static void test_tty_restored_on_death(void **state)
{
	(void)state;
	const enum child_end ends[] = {END_SIGTERM, END_SIGINT, END_EXIT};
	int master, slave;

	if (open_pty(&master, &slave))
		skip();
	for (size_t i = 0; i < ARRAY_SIZE(ends); i++) {
		int status;
		assert_true(is_cooked(slave));
		fflush(NULL);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0)
			child_run(ptsname(master), ends[i]);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		switch (ends[i]) {
		case END_SIGTERM:
			assert_true(WIFSIGNALED(status));
			assert_int_equal(WTERMSIG(status), SIGTERM);
			break;
		case END_SIGINT:
			assert_true(WIFSIGNALED(status));
			assert_int_equal(WTERMSIG(status), SIGINT);
			break;
		case END_EXIT:
			assert_true(WIFEXITED(status));
			assert_int_equal(WEXITSTATUS(status), 7);
			break;
		}
		assert_true(is_cooked(slave));
	}
	close(slave);
	close(master);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_esc_parser),
	    cmocka_unit_test_setup_teardown(test_forward, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_backpressure, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_eof, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_quit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_output, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_output_eagain, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_output_closed, setup, teardown),
	    cmocka_unit_test(test_devnull_and_closed),
	    cmocka_unit_test(test_regular_file),
	    cmocka_unit_test(test_tty_raw_and_restore),
	    cmocka_unit_test(test_tty_restored_on_death),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
