/* SPDX-License-Identifier: MIT */
#include "machine/console.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#define CONSOLE_MAX_READS 16 /* reads per wake-up, so one busy input cannot hog the I/O thread */

/*
 * The terminal is a process-wide resource and must be restorable from a signal handler,
 * so what is needed to restore it lives here rather than in struct console.
 */
static struct termios console_saved_termios;
static int console_tty_fd = -1;
static int console_tty_active;	       /* atomic: raw mode is on and saved_termios is valid */
static int console_tty_owned;	       /* atomic: a console owns the terminal */
static unsigned console_sig_installed; /* bit i: console_fatal_signals[i] is ours */
static pthread_once_t console_atexit_once = PTHREAD_ONCE_INIT;

static const int console_fatal_signals[] = {SIGHUP, SIGINT,  SIGQUIT, SIGILL,  SIGABRT,
					    SIGFPE, SIGSEGV, SIGBUS,  SIGPIPE, SIGTERM,
					    SIGSYS, SIGXCPU, SIGXFSZ};

void console_restore_terminal(void)
{
	if (__atomic_exchange_n(&console_tty_active, 0, __ATOMIC_SEQ_CST))
		(void)tcsetattr(console_tty_fd, TCSANOW, &console_saved_termios);
}

static void console_fatal_signal(int sig)
{
	int saved_errno = errno;

	console_restore_terminal();
	/* SA_RESETHAND put back the default action: it runs once the handler returns. */
	raise(sig);
	errno = saved_errno;
}

static void console_atexit(void)
{
	console_restore_terminal();
}

static void console_atexit_register(void)
{
	if (atexit(console_atexit))
		vwarn("console: cannot register exit hook; terminal may stay raw on exit()");
}

static void console_signals_install(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(console_fatal_signals); i++) {
		struct sigaction old, sa;
		int sig = console_fatal_signals[i];

		if (sigaction(sig, NULL, &old) < 0)
			continue;
		if ((old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL)
			continue; /* the program handles (or ignores) it: leave it alone */
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = console_fatal_signal;
		sigfillset(&sa.sa_mask);
		sa.sa_flags = SA_RESETHAND;
		if (sigaction(sig, &sa, NULL) == 0)
			console_sig_installed |= 1u << i;
	}
}

static void console_signals_remove(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(console_fatal_signals); i++) {
		struct sigaction cur, dfl;
		int sig = console_fatal_signals[i];

		if (!(console_sig_installed & (1u << i)))
			continue;
		console_sig_installed &= ~(1u << i);
		if (sigaction(sig, NULL, &cur) < 0 || (cur.sa_flags & SA_SIGINFO) ||
		    cur.sa_handler != console_fatal_signal)
			continue; /* replaced since: not ours to touch */
		memset(&dfl, 0, sizeof(dfl));
		dfl.sa_handler = SIG_DFL;
		(void)sigaction(sig, &dfl, NULL);
	}
}

/* True when fd is our controlling terminal and another process group is in the foreground. */
static bool console_tty_background(int fd)
{
	pid_t fg = tcgetpgrp(fd);
	return fg >= 0 && fg != getpgrp();
}

static int console_tty_enter(int fd)
{
	struct termios raw;
	int expected = 0;
	int r;

	if (!__atomic_compare_exchange_n(&console_tty_owned, &expected, 1, false, __ATOMIC_SEQ_CST,
					 __ATOMIC_SEQ_CST))
		return -EBUSY;
	if (tcgetattr(fd, &console_saved_termios) < 0) {
		r = -errno;
		goto err;
	}
	console_tty_fd = fd;
	pthread_once(&console_atexit_once, console_atexit_register);
	console_signals_install();

	raw = console_saved_termios;
	raw.c_iflag &=
	    ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
	raw.c_oflag &= ~(tcflag_t)OPOST;
	raw.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
	raw.c_cflag &= ~(tcflag_t)(CSIZE | PARENB);
	raw.c_cflag |= CS8;
	raw.c_cc[VMIN] = 1;
	raw.c_cc[VTIME] = 0;
	/* Mark active first: a signal arriving from here on restores the saved settings. */
	__atomic_store_n(&console_tty_active, 1, __ATOMIC_SEQ_CST);
	if (tcsetattr(fd, TCSANOW, &raw) < 0) {
		r = -errno;
		console_restore_terminal();
		console_signals_remove();
		goto err;
	}
	return 0;
err:
	__atomic_store_n(&console_tty_owned, 0, __ATOMIC_SEQ_CST);
	return r;
}

static void console_tty_leave(void)
{
	console_restore_terminal();
	console_signals_remove();
	__atomic_store_n(&console_tty_owned, 0, __ATOMIC_SEQ_CST);
}

void console_esc_init(struct console_esc *e, int escape)
{
	e->enabled = escape > 0 && escape <= 255;
	e->esc = e->enabled ? (uint8_t)escape : 0;
	e->pending = false;
}

size_t console_esc_feed(struct console_esc *e, const uint8_t *in, size_t n, uint8_t *out,
			bool *quit)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		uint8_t b = in[i];

		if (!e->enabled) {
			out[o++] = b;
		} else if (e->pending) {
			e->pending = false;
			if (b == 'x' || b == 'X') {
				*quit = true;
				return o;
			}
			if (b != e->esc)
				out[o++] = e->esc; /* not a command: pass both through */
			out[o++] = b;
		} else if (b == e->esc) {
			e->pending = true;
		} else {
			out[o++] = b;
		}
	}
	return o;
}

static void console_kick(struct console *c)
{
	uint64_t one = 1;

	if (write(c->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		vdebug("console: wake: %s", strerror(errno));
}

/* Bytes read (> 0), 0 at end of input, -EAGAIN when nothing is available, or -errno. */
static ssize_t console_read(struct console *c, uint8_t *buf, size_t len)
{
	ssize_t r;

	if (c->in_pollable) {
		/* The fd may be blocking (it is shared with the shell): read only when ready. */
		struct pollfd p = {.fd = c->in_fd, .events = POLLIN};
		int n;
		do
			n = poll(&p, 1, 0);
		while (n < 0 && errno == EINTR);
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EAGAIN;
		if (p.revents & POLLNVAL)
			return -EBADF;
	}
	do
		r = read(c->in_fd, buf, len);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return r;
}

/* Input is over for good. Called with the lock held. */
static void console_input_end(struct console *c)
{
	c->in_done = true;
	if (c->in_registered && evloop_del(c->loop, c->in_fd) < 0)
		vdebug("console: input fd %d was not in the event loop", c->in_fd);
	c->in_registered = false;
}

/* Move input to the UART until it is full, input runs dry, or input ends. I/O thread. */
static void console_pump(struct console *c)
{
	uint8_t buf[CONSOLE_BUF];
	bool quit = false, call_quit;
	unsigned reads = 0;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		if (c->hold_off < c->hold_len) {
			int n =
			    uart_receive(c->uart, c->hold + c->hold_off, c->hold_len - c->hold_off);
			c->hold_off += (size_t)n;
			if (c->hold_off < c->hold_len)
				break; /* the UART's rx_ready brings us back */
		}
		c->hold_off = c->hold_len = 0;
		if (c->in_done)
			break;
		if (++reads > CONSOLE_MAX_READS) {
			console_kick(c); /* more may be waiting, and an edge will not come again */
			break;
		}
		ssize_t r = console_read(c, buf, sizeof(buf));
		if (r == -EAGAIN)
			break;
		if (r <= 0) {
			if (r < 0)
				vwarn("console: reading input: %s; input closed",
				      strerror((int)-r));
			else
				vinfo("console: end of input");
			console_input_end(c);
			break;
		}
		c->hold_len = console_esc_feed(&c->esc, buf, (size_t)r, c->hold, &quit);
		/* On quit, what came before the escape still goes to the guest. */
		if (quit)
			console_input_end(c);
	}
	call_quit = quit && !c->quit_called;
	if (call_quit)
		c->quit_called = true;
	pthread_mutex_unlock(&c->lock);
	if (call_quit && c->quit)
		c->quit(c->quit_ctx);
}

static void console_in_cb(void *opaque, uint32_t events)
{
	(void)events;
	console_pump(opaque);
}

static void console_wake_cb(void *opaque, uint32_t events)
{
	struct console *c = opaque;
	uint64_t v;

	(void)events;
	if (read(c->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		vdebug("console: wake read: %s", strerror(errno));
	console_pump(c);
}

/* UART sink: guest output. vCPU thread; calls are serialised by the UART. */
static void console_out_write(void *ctx, const uint8_t *buf, size_t len)
{
	struct console *c = ctx;

	if (c->out_fd < 0 || __atomic_load_n(&c->out_dead, __ATOMIC_ACQUIRE))
		return;
	while (len) {
		ssize_t n = write(c->out_fd, buf, len);
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd p = {.fd = c->out_fd, .events = POLLOUT};
			if (poll(&p, 1, -1) >= 0 || errno == EINTR)
				continue;
		}
		vwarn("console: writing output: %s; guest output is discarded from now on",
		      n < 0 ? strerror(errno) : "nothing written");
		__atomic_store_n(&c->out_dead, true, __ATOMIC_RELEASE);
		return;
	}
}

/* UART: the RX FIFO has room again. vCPU thread: hand the work to the I/O thread. */
static void console_rx_ready(void *ctx)
{
	console_kick(ctx);
}

static const struct uart_sink_ops console_uart_ops = {
    .write = console_out_write,
    .rx_ready = console_rx_ready,
};

int console_init(struct console *c, const struct console_config *cfg, struct uart8250 *uart,
		 struct evloop *loop)
{
	int r;

	if (cfg->escape < 0 || cfg->escape > 255)
		return -EINVAL;
	memset(c, 0, sizeof(*c));
	c->uart = uart;
	c->loop = loop;
	c->in_fd = cfg->in_fd;
	c->out_fd = cfg->out_fd;
	c->quit = cfg->quit;
	c->quit_ctx = cfg->quit_ctx;
	console_esc_init(&c->esc, cfg->escape);
	r = -pthread_mutex_init(&c->lock, NULL);
	if (r)
		return r;
	c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->wake_fd < 0) {
		r = -errno;
		goto err_lock;
	}
	r = evloop_add(loop, c->wake_fd, EPOLLIN, console_wake_cb, c);
	if (r)
		goto err_wake;
	if (c->in_fd >= 0 && fcntl(c->in_fd, F_GETFL) < 0) {
		vinfo("console: no input (fd %d: %s)", c->in_fd, strerror(errno));
		c->in_fd = -1;
	}
	if (c->in_fd >= 0 && isatty(c->in_fd)) {
		if (console_tty_background(c->in_fd)) {
			vinfo("console: terminal belongs to another process group, not read");
			c->in_fd = -1;
		} else {
			r = console_tty_enter(c->in_fd);
			if (r)
				goto err_loop;
			c->owns_tty = true;
		}
	}
	/* The sink before input: rx_ready must reach us as soon as input can flow. */
	uart_set_sink(uart, &console_uart_ops, c);
	if (c->in_fd < 0) {
		c->in_done = true;
		return 0;
	}
	/* Edge-triggered: while the UART is full we stop reading without being woken again. */
	r = evloop_add(loop, c->in_fd, EPOLLIN | EPOLLET, console_in_cb, c);
	if (r == 0) {
		c->in_registered = true;
		c->in_pollable = true;
	} else if (r == -EPERM) {
		/* Regular file or /dev/null: always readable; read whenever the UART has room. */
		c->in_pollable = false;
		console_kick(c);
	} else {
		goto err_tty;
	}
	return 0;

err_tty:
	uart_set_sink(uart, NULL, NULL);
	if (c->owns_tty)
		console_tty_leave();
	c->owns_tty = false;
err_loop:
	if (evloop_del(loop, c->wake_fd) < 0)
		vdebug("console: wake fd was not in the event loop");
err_wake:
	close(c->wake_fd);
err_lock:
	pthread_mutex_destroy(&c->lock);
	return r;
}

void console_fini(struct console *c)
{
	uart_flush(c->uart);
	uart_set_sink(c->uart, NULL, NULL);
	pthread_mutex_lock(&c->lock);
	if (c->in_registered && evloop_del(c->loop, c->in_fd) < 0)
		vdebug("console: input fd was not in the event loop");
	c->in_registered = false;
	c->in_done = true;
	pthread_mutex_unlock(&c->lock);
	if (evloop_del(c->loop, c->wake_fd) < 0)
		vdebug("console: wake fd was not in the event loop");
	close(c->wake_fd);
	c->wake_fd = -1;
	if (c->owns_tty)
		console_tty_leave();
	c->owns_tty = false;
	pthread_mutex_destroy(&c->lock);
}

bool console_input_done(struct console *c)
{
	pthread_mutex_lock(&c->lock);
	bool done = c->in_done;
	pthread_mutex_unlock(&c->lock);
	return done;
}
