/* SPDX-License-Identifier: MIT */
#include "devices/legacy/uart8250.h"
#include "bus/bus.h"
#include "common/log.h"
#include "memory/layout.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

#define UART_LSR_ERRORS (UART_LSR_OE | UART_LSR_PE | UART_LSR_FE | UART_LSR_BI)
#define UART_LSR_STICKY (UART_LSR_ERRORS | UART_LSR_FIFOE)
#define UART_MCR_MASK 0x1f /* AFE and bits above do not exist on a 16550A */
#define UART_IER_MASK 0x0f
#define UART_FCR_STORED (UART_FCR_ENABLE | UART_FCR_DMA | UART_FCR_TRIGGER_MASK)
#define UART_RESET_DIVISOR 12 /* 9600 baud with the PC's 1.8432 MHz clock */

/* What a register access leaves for the caller to do once the state lock is dropped. */
struct uart_after {
	uint8_t out[sizeof(((struct uart8250 *)0)->tx)];
	size_t out_len;
	bool rx_ready;
};

static bool uart_fifo_on(const struct uart8250 *u)
{
	return u->fcr & UART_FCR_ENABLE;
}

static bool uart_loop(const struct uart8250 *u)
{
	return u->mcr & UART_MCR_LOOP;
}

static unsigned uart_rx_capacity(const struct uart8250 *u)
{
	return uart_fifo_on(u) ? UART_FIFO_SIZE : 1;
}

static unsigned uart_rx_trigger(const struct uart8250 *u)
{
	static const uint8_t levels[4] = {1, 4, 8, 14};
	return levels[(u->fcr & UART_FCR_TRIGGER_MASK) >> 6];
}

static void uart_rx_push(struct uart8250 *u, uint8_t v)
{
	u->rx[(u->rx_head + u->rx_count) % UART_FIFO_SIZE] = v;
	u->rx_count++;
}

static void uart_rx_reset(struct uart8250 *u)
{
	u->rx_head = 0;
	u->rx_count = 0;
}

/* A character from the loopback path: lost with OE if the FIFO (or RBR) is full. */
static void uart_rx_loop_char(struct uart8250 *u, uint8_t v, bool brk)
{
	if (u->rx_count >= uart_rx_capacity(u)) {
		u->lsr |= UART_LSR_OE;
		return;
	}
	uart_rx_push(u, v);
	if (brk)
		u->lsr |= UART_LSR_BI | (uart_fifo_on(u) ? UART_LSR_FIFOE : 0);
}

static uint8_t uart_lsr(const struct uart8250 *u)
{
	return u->lsr | UART_LSR_THRE | UART_LSR_TEMT | (u->rx_count ? UART_LSR_DR : 0);
}

/* The modem status inputs (MSR bits 7:4). */
static uint8_t uart_msr_lines(const struct uart8250 *u)
{
	uint8_t s = 0;

	if (!uart_loop(u))
		return UART_MSR_CTS | UART_MSR_DSR | UART_MSR_DCD;
	if (u->mcr & UART_MCR_RTS)
		s |= UART_MSR_CTS;
	if (u->mcr & UART_MCR_DTR)
		s |= UART_MSR_DSR;
	if (u->mcr & UART_MCR_OUT1)
		s |= UART_MSR_RI;
	if (u->mcr & UART_MCR_OUT2)
		s |= UART_MSR_DCD;
	return s;
}

static void uart_msr_note_change(struct uart8250 *u, uint8_t before, uint8_t after)
{
	uint8_t chg = before ^ after;

	if (chg & UART_MSR_CTS)
		u->msr_delta |= UART_MSR_DCTS;
	if (chg & UART_MSR_DSR)
		u->msr_delta |= UART_MSR_DDSR;
	if (chg & UART_MSR_DCD)
		u->msr_delta |= UART_MSR_DDCD;
	if ((before & UART_MSR_RI) && !(after & UART_MSR_RI))
		u->msr_delta |= UART_MSR_TERI;
}

static uint8_t uart_iir(const struct uart8250 *u)
{
	uint8_t fifo = uart_fifo_on(u) ? UART_IIR_FIFO_ON : 0;

	if ((u->ier & UART_IER_RLSI) && (u->lsr & UART_LSR_ERRORS))
		return fifo | UART_IIR_RLSI;
	if ((u->ier & UART_IER_RDI) && u->rx_count) {
		if (fifo && u->rx_count < uart_rx_trigger(u))
			return fifo | UART_IIR_CTI;
		return fifo | UART_IIR_RDI;
	}
	if ((u->ier & UART_IER_THRI) && u->thr_ipending)
		return fifo | UART_IIR_THRI;
	if ((u->ier & UART_IER_MSI) && u->msr_delta)
		return fifo | UART_IIR_MSI;
	return fifo | UART_IIR_NO_INT;
}

static void uart_update_irq(struct uart8250 *u)
{
	int level = !(uart_iir(u) & UART_IIR_NO_INT) && (u->mcr & UART_MCR_OUT2);

	if (level == u->irq_level)
		return;
	int r = u->plat->ops->irq_set_level(u->plat->ctx, u->gsi, level);
	if (r < 0) {
		vlog_rl("uart: setting irq %u to %d: %s", u->gsi, level, strerror(-r));
		return;
	}
	u->irq_level = level;
}

/* rx_ready is due once the FIFO is empty and the input line is connected. */
static void uart_check_rx_ready(struct uart8250 *u, struct uart_after *after)
{
	if (u->rx_want_space && !u->rx_count && !uart_loop(u)) {
		u->rx_want_space = false;
		after->rx_ready = true;
	}
}

static void uart_take_output(struct uart8250 *u, struct uart_after *after)
{
	memcpy(after->out, u->tx, u->tx_count);
	after->out_len = u->tx_count;
	u->tx_count = 0;
}

static void uart_fcr_write(struct uart8250 *u, uint8_t v)
{
	bool on = v & UART_FCR_ENABLE;

	/* Switching the FIFOs on or off resets both; other bits need FCR0 set to stick. */
	if (on != uart_fifo_on(u))
		uart_rx_reset(u);
	if (!on) {
		u->fcr = 0;
		return;
	}
	if (v & UART_FCR_CLEAR_RX)
		uart_rx_reset(u);
	/* CLEAR_TX: the transmitter is always empty by the time a driver gets here. */
	u->fcr = v & UART_FCR_STORED;
}

static void uart_reg_write(struct uart8250 *u, unsigned reg, uint8_t v)
{
	bool dlab = u->lcr & UART_LCR_DLAB;
	uint8_t old;

	switch (reg) {
	case UART_RBR:
		if (dlab) {
			u->dll = v;
			break;
		}
		if (uart_loop(u))
			uart_rx_loop_char(u, v, false);
		else if (u->tx_count < sizeof(u->tx)) /* always: full buffers are flushed */
			u->tx[u->tx_count++] = v;
		u->thr_ipending = true;
		break;
	case UART_IER:
		if (dlab) {
			u->dlm = v;
			break;
		}
		old = u->ier;
		u->ier = v & UART_IER_MASK;
		/* THR is always empty: enabling its interrupt makes it pending (Linux relies on
		 * it). */
		if ((u->ier & UART_IER_THRI) && !(old & UART_IER_THRI))
			u->thr_ipending = true;
		else if (!(u->ier & UART_IER_THRI))
			u->thr_ipending = false;
		break;
	case UART_IIR:
		uart_fcr_write(u, v);
		break;
	case UART_LCR:
		old = u->lcr;
		u->lcr = v;
		if (uart_loop(u) && (v & UART_LCR_SBC) && !(old & UART_LCR_SBC))
			uart_rx_loop_char(u, 0, true);
		break;
	case UART_MCR: {
		uint8_t before = uart_msr_lines(u);
		u->mcr = v & UART_MCR_MASK;
		uart_msr_note_change(u, before, uart_msr_lines(u));
		break;
	}
	case UART_LSR: /* factory test register on real parts: ignore */
	case UART_MSR:
		break;
	case UART_SCR:
		u->scr = v;
		break;
	}
}

static uint8_t uart_reg_read(struct uart8250 *u, unsigned reg)
{
	bool dlab = u->lcr & UART_LCR_DLAB;
	uint8_t v = 0;

	switch (reg) {
	case UART_RBR:
		if (dlab)
			return u->dll;
		if (u->rx_count) {
			v = u->rx[u->rx_head];
			u->rx_head = (u->rx_head + 1) % UART_FIFO_SIZE;
			u->rx_count--;
		}
		return v;
	case UART_IER:
		return dlab ? u->dlm : u->ier;
	case UART_IIR:
		v = uart_iir(u);
		if ((v & 0x0f) == UART_IIR_THRI)
			u->thr_ipending = false;
		return v;
	case UART_LCR:
		return u->lcr;
	case UART_MCR:
		return u->mcr;
	case UART_LSR:
		v = uart_lsr(u);
		u->lsr &= (uint8_t)~UART_LSR_STICKY;
		return v;
	case UART_MSR:
		v = uart_msr_lines(u) | u->msr_delta;
		u->msr_delta = 0;
		return v;
	case UART_SCR:
		return u->scr;
	}
	return 0xff;
}

/* Called with tx_lock held and lock dropped: deliver what the access produced. */
static void uart_finish(struct uart8250 *u, const struct uart_after *after)
{
	if (after->out_len && u->sink && u->sink->write)
		u->sink->write(u->sink_ctx, after->out, after->out_len);
	if (after->rx_ready && u->sink && u->sink->rx_ready)
		u->sink->rx_ready(u->sink_ctx);
}

static void uart_pio_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct uart8250 *u = opaque;
	struct uart_after after = {.out_len = 0};
	uint8_t *p = data;

	pthread_mutex_lock(&u->tx_lock);
	pthread_mutex_lock(&u->lock);
	/* A read means the driver is looking at the UART: pending output goes out first. */
	uart_take_output(u, &after);
	for (unsigned i = 0; i < len; i++)
		p[i] = off + i < UART_NR_PORTS ? uart_reg_read(u, (unsigned)(off + i)) : 0xff;
	uart_check_rx_ready(u, &after);
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
	uart_finish(u, &after);
	pthread_mutex_unlock(&u->tx_lock);
}

static void uart_pio_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct uart8250 *u = opaque;
	struct uart_after after = {.out_len = 0};
	const uint8_t *p = data;

	pthread_mutex_lock(&u->tx_lock);
	pthread_mutex_lock(&u->lock);
	for (unsigned i = 0; i < len && off + i < UART_NR_PORTS; i++)
		uart_reg_write(u, (unsigned)(off + i), p[i]);
	/*
	 * Output leaves on every write: holding bytes until the guest's next UART access
	 * would keep the last line of a guest that then halts or waits forever. A burst of
	 * THR writes within one access (rep outsb) still goes out as one sink call.
	 */
	uart_take_output(u, &after);
	uart_check_rx_ready(u, &after);
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
	uart_finish(u, &after);
	pthread_mutex_unlock(&u->tx_lock);
}

static const struct bus_ops uart_bus_ops = {
    .read = uart_pio_read,
    .write = uart_pio_write,
};

static void uart_regs_reset(struct uart8250 *u)
{
	u->ier = 0;
	u->lcr = 0;
	u->mcr = 0;
	u->lsr = 0;
	u->msr_delta = 0;
	u->fcr = 0;
	u->thr_ipending = false;
	u->dll = UART_RESET_DIVISOR;
	u->dlm = 0;
	uart_rx_reset(u);
}

int uart_init(struct uart8250 *u, const struct platform *plat, const struct uart_sink_ops *sink,
	      void *sink_ctx)
{
	int r;

	memset(u, 0, sizeof(*u));
	u->plat = plat;
	u->base = PORT_COM1;
	u->gsi = GSI_COM1;
	u->sink = sink;
	u->sink_ctx = sink_ctx;
	uart_regs_reset(u);
	r = -pthread_mutex_init(&u->tx_lock, NULL);
	if (r)
		return r;
	r = -pthread_mutex_init(&u->lock, NULL);
	if (r)
		goto err_tx_lock;
	r = bus_register(plat->pio, u->base, UART_NR_PORTS, &uart_bus_ops, u);
	if (r)
		goto err_lock;
	u->registered = true;
	return 0;

err_lock:
	pthread_mutex_destroy(&u->lock);
err_tx_lock:
	pthread_mutex_destroy(&u->tx_lock);
	return r;
}

void uart_fini(struct uart8250 *u)
{
	if (u->registered && bus_unregister(u->plat->pio, u->base, u) < 0)
		vwarn("uart: port 0x%x was not registered", u->base);
	u->registered = false;
	uart_flush(u);
	pthread_mutex_destroy(&u->lock);
	pthread_mutex_destroy(&u->tx_lock);
}

void uart_flush(struct uart8250 *u)
{
	struct uart_after after = {.out_len = 0};

	pthread_mutex_lock(&u->tx_lock);
	pthread_mutex_lock(&u->lock);
	uart_take_output(u, &after);
	pthread_mutex_unlock(&u->lock);
	uart_finish(u, &after);
	pthread_mutex_unlock(&u->tx_lock);
}

void uart_reset(struct uart8250 *u)
{
	struct uart_after after = {.out_len = 0};

	pthread_mutex_lock(&u->tx_lock);
	pthread_mutex_lock(&u->lock);
	uart_take_output(u, &after);
	uart_regs_reset(u);
	uart_check_rx_ready(u, &after);
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
	uart_finish(u, &after);
	pthread_mutex_unlock(&u->tx_lock);
}

void uart_set_sink(struct uart8250 *u, const struct uart_sink_ops *sink, void *sink_ctx)
{
	pthread_mutex_lock(&u->tx_lock);
	u->sink = sink;
	u->sink_ctx = sink_ctx;
	pthread_mutex_unlock(&u->tx_lock);
}

int uart_receive(struct uart8250 *u, const uint8_t *buf, size_t len)
{
	size_t n = 0;

	pthread_mutex_lock(&u->lock);
	if (!uart_loop(u)) {
		unsigned cap = uart_rx_capacity(u);
		while (n < len && u->rx_count < cap)
			uart_rx_push(u, buf[n++]);
	}
	if (n < len)
		u->rx_want_space = true;
	if (n)
		uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return (int)n;
}

void uart_save(struct uart8250 *u, struct uart_state *st)
{
	uart_flush(u);
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&u->lock);
	st->version = htole32(UART_STATE_VERSION);
	st->ier = u->ier;
	st->lcr = u->lcr;
	st->mcr = u->mcr;
	st->lsr = u->lsr;
	st->msr_delta = u->msr_delta;
	st->scr = u->scr;
	st->fcr = u->fcr;
	st->dll = u->dll;
	st->dlm = u->dlm;
	st->thr_ipending = u->thr_ipending;
	st->rx_count = (uint8_t)u->rx_count;
	for (unsigned i = 0; i < u->rx_count; i++)
		st->rx[i] = u->rx[(u->rx_head + i) % UART_FIFO_SIZE];
	pthread_mutex_unlock(&u->lock);
}

int uart_load(struct uart8250 *u, const struct uart_state *st)
{
	struct uart_after after = {.out_len = 0};

	if (le32toh(st->version) != UART_STATE_VERSION)
		return -EINVAL;
	if ((st->ier & ~UART_IER_MASK) || (st->mcr & ~UART_MCR_MASK) ||
	    (st->lsr & ~UART_LSR_STICKY) || (st->msr_delta & 0xf0) ||
	    (st->fcr & ~UART_FCR_STORED) || st->thr_ipending > 1)
		return -EINVAL;
	if (st->rx_count > ((st->fcr & UART_FCR_ENABLE) ? UART_FIFO_SIZE : 1))
		return -EINVAL;

	pthread_mutex_lock(&u->tx_lock);
	pthread_mutex_lock(&u->lock);
	uart_take_output(u, &after);
	u->ier = st->ier;
	u->lcr = st->lcr;
	u->mcr = st->mcr;
	u->lsr = st->lsr;
	u->msr_delta = st->msr_delta;
	u->scr = st->scr;
	u->fcr = st->fcr;
	u->dll = st->dll;
	u->dlm = st->dlm;
	u->thr_ipending = st->thr_ipending;
	uart_rx_reset(u);
	for (unsigned i = 0; i < st->rx_count; i++)
		uart_rx_push(u, st->rx[i]);
	/* A producer waiting for room keeps waiting: rx_want_space is runtime state. */
	uart_check_rx_ready(u, &after);
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
	uart_finish(u, &after);
	pthread_mutex_unlock(&u->tx_lock);
	return 0;
}

_Static_assert(sizeof(struct uart_state) == 32, "uart_state is a fixed-layout record");
