/* SPDX-License-Identifier: MIT */
/*
 * The host console: host stdin -> COM1 receive, COM1 transmit -> host stdout.
 *
 * Input (read on the I/O thread through the event loop):
 * - If the input fd is a terminal of the foreground process group it is put in raw mode
 *   (no echo, no line editing, no signals from Ctrl-C/Ctrl-Z, 8-bit clean, no output
 *   post-processing: the guest sends its own CR/LF). The previous settings are restored
 *   on every way out: console_fini(), console_restore_terminal(), an atexit hook, and
 *   handlers for the fatal signals (SIGHUP SIGINT SIGQUIT SIGILL SIGABRT SIGFPE SIGSEGV
 *   SIGBUS SIGPIPE SIGTERM SIGSYS SIGXCPU SIGXFSZ) that restore and then re-raise. A
 *   handler is only installed over the default action: a handler the program already has
 *   is left alone (it must then call console_restore_terminal() itself).
 *   A terminal in a background process group is not touched and not read.
 * - Not a terminal (pipe, file, /dev/null) works without raw mode; a closed or invalid fd
 *   means no input. End of input (or a read error) stops reading; the VM keeps running.
 * - Escape: the escape byte (Ctrl-A by default) followed by 'x' or 'X' calls quit();
 *   escape twice sends one escape byte to the guest; escape followed by any other byte
 *   sends both bytes. Bytes after the quit sequence are dropped. The escape is active
 *   whether or not the input is a terminal; CONSOLE_ESCAPE_NONE disables it.
 * - Back-pressure: bytes the UART cannot take yet are held (at most one read's worth)
 *   and stdin is not read again until the UART reports room (uart rx_ready); nothing is
 *   dropped and nothing is buffered without bound.
 *
 * Output (called by the UART on a vCPU thread): written fully to the output fd, retrying
 * partial writes and EINTR, and waiting with poll() on EAGAIN (a stopped terminal stalls
 * the transmitting vCPU, like flow control). After a hard error (EPIPE, EIO...) output
 * is discarded with one warning. The program should ignore SIGPIPE to get EPIPE.
 *
 * Lifetime: console_fini() must run after the event loop thread is stopped (or on it).
 * Only one console at a time may own a terminal (-EBUSY otherwise).
 */
#ifndef VIREO_MACHINE_CONSOLE_H
#define VIREO_MACHINE_CONSOLE_H

#include "common/compiler.h"
#include "common/evloop.h"
#include "devices/legacy/uart8250.h"
#include <pthread.h>

#define CONSOLE_ESCAPE_DEFAULT 0x01 /* Ctrl-A */
#define CONSOLE_ESCAPE_NONE 0
#define CONSOLE_BUF 256

/* The escape-sequence filter, a pure state machine (unit-tested on its own). */
struct console_esc {
	uint8_t esc;  /* escape byte */
	bool enabled; /* false: everything passes through */
	bool pending; /* the last byte fed was an unpaired escape */
};

/* escape: 1-255, or CONSOLE_ESCAPE_NONE. */
void console_esc_init(struct console_esc *e, int escape);
/*
 * Filter n input bytes into out, which must hold n + 1 bytes (a held escape from the
 * previous call may be released). Returns the number of bytes written to out. Sets *quit
 * (and stops at that point) when the quit sequence is seen; *quit is never cleared.
 */
size_t console_esc_feed(struct console_esc *e, const uint8_t *in, size_t n, uint8_t *out,
			bool *quit);

struct console_config {
	int in_fd;		 /* usually STDIN_FILENO; -1: no input */
	int out_fd;		 /* usually STDOUT_FILENO; -1: discard output */
	int escape;		 /* 1-255 (CONSOLE_ESCAPE_DEFAULT), or CONSOLE_ESCAPE_NONE */
	void (*quit)(void *ctx); /* escape + 'x'; called once, on the I/O thread */
	void *quit_ctx;
};

struct console {
	struct uart8250 *uart;
	struct evloop *loop;
	pthread_mutex_t lock; /* input side */
	int in_fd, out_fd;
	int wake_fd;	    /* eventfd: the UART has room, or input must be pumped again */
	bool in_registered; /* in_fd is in the event loop (edge-triggered) */
	bool in_pollable;   /* false for regular files and /dev/null: read when there is room */
	bool in_done;	    /* EOF, read error or quit: input is over */
	bool owns_tty;	    /* put in_fd in raw mode */
	bool quit_called;
	bool out_dead; /* atomic: output failed for good */
	struct console_esc esc;
	uint8_t hold[CONSOLE_BUF + 1]; /* filtered bytes the UART has not taken yet */
	size_t hold_off, hold_len;
	void (*quit)(void *ctx);
	void *quit_ctx;
};

/* Attach cfg's fds to uart (becomes its sink) and start reading input on loop. */
int console_init(struct console *c, const struct console_config *cfg, struct uart8250 *uart,
		 struct evloop *loop) WUR;
/* Detach from the UART and the loop, restore the terminal. Does not close in/out fds. */
void console_fini(struct console *c);
/* True once input has ended (EOF, read error, quit, or no input at all). */
bool console_input_done(struct console *c);
/* Put the terminal back as it was. Idempotent, async-signal-safe, callable from anywhere. */
void console_restore_terminal(void);

#endif
