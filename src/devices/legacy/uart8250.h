/* SPDX-License-Identifier: MIT */
/*
 * 16550A UART (8250 family) on COM1: the full register model a driver can see, with
 * interrupts on one level-triggered GSI.
 *
 * Model:
 * - The transmitter is infinitely fast: LSR always shows THRE|TEMT. The bytes of one
 *   guest access are handed to the sink at the end of that access, so nothing waits for
 *   a later access that may never come (a guest that prints and halts). uart_flush()
 *   remains for callers that must be sure nothing is buffered (pause, snapshot).
 * - Writing THR, or setting IER.ETBEI while it was clear, makes the THRE interrupt
 *   pending; reading IIR while it reports THRE clears it (what Linux's THRE test expects).
 * - Receive: uart_receive() fills the RX FIFO (16 bytes, or 1 with FIFOs disabled) and
 *   returns how many bytes it took; it never drops or buffers beyond the FIFO. When it
 *   took less than offered, the sink's rx_ready() is called once the guest has drained
 *   the FIFO, so the caller can offer the rest. With FIFOs enabled, the interrupt is
 *   "RX data available" at or above the trigger level and "character timeout" below it
 *   (no timer: the timeout is reported at once).
 * - Interrupt priority: receiver line status > RX data / timeout > THRE > modem status.
 *   The GSI is asserted while an enabled interrupt is pending AND MCR.OUT2 is set, as on
 *   a PC board (Linux sets OUT2; a guest that polls never needs it).
 * - Modem inputs are "cable connected": CTS, DSR and DCD asserted, RI clear. In loopback
 *   (MCR.LOOP) THR feeds the RX FIFO (overrun -> LSR.OE), MSR mirrors MCR (CTS=RTS,
 *   DSR=DTR, RI=OUT1, DCD=OUT2), setting LCR.SBC receives a break (a NUL byte with
 *   LSR.BI), and uart_receive() accepts nothing (the input line is disconnected).
 * - Divisor latch and line format are stored and otherwise ignored (no baud-rate pacing).
 *
 * Threads: guest accesses arrive on vCPU threads, uart_receive() on the I/O thread.
 * Two locks: tx_lock serialises guest accesses and sink calls (the sink may block on a
 * slow stdout without blocking uart_receive()); lock protects the registers and is
 * never held while calling out, except to platform irq_set_level.
 */
#ifndef VIREO_DEVICES_LEGACY_UART8250_H
#define VIREO_DEVICES_LEGACY_UART8250_H

#include "common/compiler.h"
#include "bus/platform.h"
#include <pthread.h>

#define UART_FIFO_SIZE 16
#define UART_NR_PORTS 8

/* Register offsets from the base port. */
enum {
	UART_RBR = 0, /* read, DLAB=0; THR on write; DLL with DLAB=1 */
	UART_IER = 1, /* DLM with DLAB=1 */
	UART_IIR = 2, /* read; FCR on write */
	UART_LCR = 3,
	UART_MCR = 4,
	UART_LSR = 5,
	UART_MSR = 6,
	UART_SCR = 7,
	/* Write-side and DLAB names of the same offsets. */
	UART_THR = UART_RBR,
	UART_DLL = UART_RBR,
	UART_DLM = UART_IER,
	UART_FCR = UART_IIR,
};

#define UART_IER_RDI 0x01  /* RX data available (and character timeout) */
#define UART_IER_THRI 0x02 /* THR empty */
#define UART_IER_RLSI 0x04 /* receiver line status */
#define UART_IER_MSI 0x08  /* modem status */

#define UART_IIR_NO_INT 0x01
#define UART_IIR_MSI 0x00
#define UART_IIR_THRI 0x02
#define UART_IIR_RDI 0x04
#define UART_IIR_RLSI 0x06
#define UART_IIR_CTI 0x0c
#define UART_IIR_FIFO_ON 0xc0

#define UART_FCR_ENABLE 0x01
#define UART_FCR_CLEAR_RX 0x02
#define UART_FCR_CLEAR_TX 0x04
#define UART_FCR_DMA 0x08
#define UART_FCR_TRIGGER_MASK 0xc0

#define UART_LCR_SBC 0x40  /* set break */
#define UART_LCR_DLAB 0x80 /* divisor latch access */

#define UART_MCR_DTR 0x01
#define UART_MCR_RTS 0x02
#define UART_MCR_OUT1 0x04
#define UART_MCR_OUT2 0x08
#define UART_MCR_LOOP 0x10

#define UART_LSR_DR 0x01
#define UART_LSR_OE 0x02
#define UART_LSR_PE 0x04
#define UART_LSR_FE 0x08
#define UART_LSR_BI 0x10
#define UART_LSR_THRE 0x20
#define UART_LSR_TEMT 0x40
#define UART_LSR_FIFOE 0x80

#define UART_MSR_DCTS 0x01
#define UART_MSR_DDSR 0x02
#define UART_MSR_TERI 0x04
#define UART_MSR_DDCD 0x08
#define UART_MSR_CTS 0x10
#define UART_MSR_DSR 0x20
#define UART_MSR_RI 0x40
#define UART_MSR_DCD 0x80

struct uart_sink_ops {
	/*
	 * Bytes the guest transmitted, in order. Called on a vCPU thread (or the caller of
	 * uart_flush/uart_save) with tx_lock held, never concurrently with itself. May block:
	 * that stalls the transmitting vCPU, like hardware flow control. May be NULL.
	 */
	void (*write)(void *ctx, const uint8_t *buf, size_t len);
	/*
	 * Optional. After uart_receive() took fewer bytes than offered, called once when the
	 * RX FIFO is empty again. Runs on a vCPU thread with no UART lock held except
	 * tx_lock: it must not block; it may call uart_receive().
	 */
	void (*rx_ready)(void *ctx);
};

struct uart8250 {
	const struct platform *plat;
	uint16_t base;
	unsigned gsi;
	bool registered;
	pthread_mutex_t tx_lock; /* outer: guest accesses, sink calls */
	pthread_mutex_t lock;	 /* inner: everything below */
	const struct uart_sink_ops *sink;
	void *sink_ctx;
	/* Registers. lsr holds only the sticky error bits; DR/THRE/TEMT are derived. */
	uint8_t ier, lcr, mcr, lsr, msr_delta, scr, fcr, dll, dlm;
	bool thr_ipending;
	uint8_t rx[UART_FIFO_SIZE];
	unsigned rx_head, rx_count;
	uint8_t tx[UART_FIFO_SIZE]; /* an access adds at most one byte, then flushes when full */
	unsigned tx_count;
	bool rx_want_space; /* uart_receive() refused bytes: call rx_ready when drained */
	int irq_level;
};

/*
 * Snapshot record: version 1, fixed width, little-endian. Written by uart_save, checked
 * field by field by uart_load (-EINVAL on a bad version or value).
 */
#define UART_STATE_VERSION 1
struct uart_state {
	uint32_t version; /* little-endian */
	uint8_t ier, lcr, mcr, lsr, msr_delta, scr, fcr, dll, dlm;
	uint8_t thr_ipending;
	uint8_t rx_count; /* bytes in rx[], oldest first */
	uint8_t reserved;
	uint8_t rx[UART_FIFO_SIZE];
};

/*
 * Register the UART at PORT_COM1 on plat->pio, interrupts on GSI_COM1. sink may be NULL
 * (output discarded) and be set later with uart_set_sink.
 */
int uart_init(struct uart8250 *u, const struct platform *plat, const struct uart_sink_ops *sink,
	      void *sink_ctx) WUR;
/* Unregister and free. Call only when no vCPU can access the port any more. */
void uart_fini(struct uart8250 *u);
/* Power-on state (machine reset). Keeps the sink; pending output is flushed first. */
void uart_reset(struct uart8250 *u);
/* Replace the sink (NULL: discard output). Not from inside a sink callback. */
void uart_set_sink(struct uart8250 *u, const struct uart_sink_ops *sink, void *sink_ctx);
/*
 * Offer received bytes (any thread). Returns how many were put in the RX FIFO (0..len);
 * the caller keeps the rest and retries after rx_ready().
 */
int uart_receive(struct uart8250 *u, const uint8_t *buf, size_t len) WUR;
/* Hand buffered transmit bytes to the sink now. */
void uart_flush(struct uart8250 *u);
/* Flushes pending output, then records the state. */
void uart_save(struct uart8250 *u, struct uart_state *st);
int uart_load(struct uart8250 *u, const struct uart_state *st) WUR;

#endif
