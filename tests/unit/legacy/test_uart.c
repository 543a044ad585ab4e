/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>

#include "fake_platform.h"
#include "devices/legacy/uart8250.h"
#include "memory/layout.h"

struct sink_rec {
	uint8_t buf[4096];
	size_t len;
	unsigned writes;
	unsigned rx_ready;
};

static void rec_write(void *ctx, const uint8_t *buf, size_t len)
{
	struct sink_rec *s = ctx;
	assert_true(s->len + len <= sizeof(s->buf));
	memcpy(s->buf + s->len, buf, len);
	s->len += len;
	s->writes++;
}

static void rec_rx_ready(void *ctx)
{
	struct sink_rec *s = ctx;
	s->rx_ready++;
}

static const struct uart_sink_ops rec_ops = {.write = rec_write, .rx_ready = rec_rx_ready};

struct t {
	struct fake_platform fp;
	struct uart8250 u;
	struct sink_rec sink;
};

static int setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));
	fake_platform_init(&t->fp, 0, 4096);
	assert_int_equal(uart_init(&t->u, &t->fp.plat, &rec_ops, &t->sink), 0);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct t *t = *state;
	uart_fini(&t->u);
	fake_platform_fini(&t->fp);
	free(t);
	return 0;
}

static void out(struct t *t, unsigned reg, uint8_t v)
{
	assert_true(bus_write(&t->fp.pio, PORT_COM1 + reg, &v, 1));
}

static uint8_t in(struct t *t, unsigned reg)
{
	uint8_t v = 0;
	assert_true(bus_read(&t->fp.pio, PORT_COM1 + reg, &v, 1));
	return v;
}

static int irq(struct t *t)
{
	return t->fp.irq_level[GSI_COM1];
}

static int rx(struct t *t, const char *s)
{
	return uart_receive(&t->u, (const uint8_t *)s, strlen(s));
}

static void test_reset_values(void **state)
{
	struct t *t = *state;
	assert_int_equal(in(t, UART_IER), 0);
	assert_int_equal(in(t, UART_IIR), UART_IIR_NO_INT);
	assert_int_equal(in(t, UART_LCR), 0);
	assert_int_equal(in(t, UART_MCR), 0);
	assert_int_equal(in(t, UART_LSR), UART_LSR_THRE | UART_LSR_TEMT);
	assert_int_equal(in(t, UART_MSR), UART_MSR_CTS | UART_MSR_DSR | UART_MSR_DCD);
	out(t, UART_SCR, 0x5a);
	assert_int_equal(in(t, UART_SCR), 0x5a);
	assert_int_equal(irq(t), 0);
	/* Bits that do not exist on a 16550A read back as 0. */
	out(t, UART_IER, 0xff);
	assert_int_equal(in(t, UART_IER), 0x0f);
	assert_int_equal(irq(t), 0); /* THRE pending, but OUT2 is off */
	out(t, UART_MCR, 0xff);
	assert_int_equal(in(t, UART_MCR), 0x1f);
	assert_int_equal(irq(t), 1);
}

static void test_divisor_latch(void **state)
{
	struct t *t = *state;
	out(t, UART_IER, UART_IER_RDI);
	out(t, UART_LCR, UART_LCR_DLAB | 0x03);
	assert_int_equal(in(t, UART_LCR), 0x83);
	out(t, UART_RBR, 0x01); /* DLL */
	out(t, UART_IER, 0x02); /* DLM */
	assert_int_equal(in(t, UART_RBR), 0x01);
	assert_int_equal(in(t, UART_IER), 0x02);
	out(t, UART_LCR, 0x03);
	/* With DLAB clear the same offsets are RBR/IER again, and the latch did not transmit. */
	assert_int_equal(in(t, UART_IER), UART_IER_RDI);
	assert_int_equal(in(t, UART_RBR), 0);
	assert_int_equal(t->sink.len, 0);
	out(t, UART_LCR, UART_LCR_DLAB);
	assert_int_equal(in(t, UART_RBR), 0x01);
	assert_int_equal(in(t, UART_IER), 0x02);
}

static void test_lsr_bits(void **state)
{
	struct t *t = *state;
	assert_int_equal(in(t, UART_LSR) & UART_LSR_DR, 0);
	assert_int_equal(rx(t, "A"), 1);
	assert_int_equal(in(t, UART_LSR), UART_LSR_DR | UART_LSR_THRE | UART_LSR_TEMT);
	/* FIFOs off: the holding register takes one byte. */
	assert_int_equal(rx(t, "B"), 0);
	assert_int_equal(in(t, UART_RBR), 'A');
	assert_int_equal(in(t, UART_LSR) & UART_LSR_DR, 0);
	/* Loopback overrun with FIFOs off: second byte lost, OE until LSR is read. */
	out(t, UART_MCR, UART_MCR_LOOP);
	out(t, UART_RBR, 'x');
	out(t, UART_RBR, 'y');
	uint8_t lsr = in(t, UART_LSR);
	assert_true(lsr & UART_LSR_OE);
	assert_true(lsr & UART_LSR_DR);
	assert_int_equal(in(t, UART_LSR) & UART_LSR_OE, 0);
	assert_int_equal(in(t, UART_RBR), 'x');
}

static void test_fifo(void **state)
{
	struct t *t = *state;
	out(t, UART_FCR, UART_FCR_ENABLE | 0xc0);
	assert_int_equal(in(t, UART_IIR) & UART_IIR_FIFO_ON, UART_IIR_FIFO_ON);
	assert_int_equal(rx(t, "0123456789abcdefXYZ"), 16);
	assert_int_equal(rx(t, "XYZ"), 0);
	for (int i = 0; i < 16; i++) {
		assert_true(in(t, UART_LSR) & UART_LSR_DR);
		assert_int_equal(in(t, UART_RBR), "0123456789abcdef"[i]);
	}
	assert_int_equal(in(t, UART_LSR) & UART_LSR_DR, 0);
	assert_int_equal(in(t, UART_LSR) & UART_LSR_OE, 0); /* uart_receive never overruns */

	/* RX FIFO reset bit. */
	assert_int_equal(rx(t, "abc"), 3);
	out(t, UART_FCR, UART_FCR_ENABLE | UART_FCR_CLEAR_RX);
	assert_int_equal(in(t, UART_LSR) & UART_LSR_DR, 0);
	/* Without FCR0 nothing else is programmed, and FIFOs go off (and are emptied). */
	assert_int_equal(rx(t, "abc"), 3);
	out(t, UART_FCR, UART_FCR_CLEAR_RX | 0xc0);
	assert_int_equal(in(t, UART_IIR), UART_IIR_NO_INT);
	assert_int_equal(in(t, UART_LSR) & UART_LSR_DR, 0);
	assert_int_equal(rx(t, "ab"), 1);

	/* Loopback overrun with FIFOs on: 17th byte lost, the 16 before it kept. */
	out(t, UART_FCR, UART_FCR_ENABLE);
	out(t, UART_MCR, UART_MCR_LOOP);
	for (int i = 0; i < 17; i++)
		out(t, UART_RBR, (uint8_t)('a' + i));
	assert_true(in(t, UART_LSR) & UART_LSR_OE);
	for (int i = 0; i < 16; i++)
		assert_int_equal(in(t, UART_RBR), 'a' + i);
	assert_int_equal(in(t, UART_LSR) & (UART_LSR_DR | UART_LSR_OE), 0);
}

static void test_trigger_and_timeout(void **state)
{
	struct t *t = *state;
	out(t, UART_FCR, UART_FCR_ENABLE | 0x40); /* trigger level 4 */
	out(t, UART_IER, UART_IER_RDI);
	out(t, UART_MCR, UART_MCR_OUT2);
	assert_int_equal(in(t, UART_IIR), UART_IIR_FIFO_ON | UART_IIR_NO_INT);
	assert_int_equal(irq(t), 0);
	assert_int_equal(rx(t, "ab"), 2);
	assert_int_equal(in(t, UART_IIR), UART_IIR_FIFO_ON | UART_IIR_CTI);
	assert_int_equal(irq(t), 1);
	assert_int_equal(rx(t, "cd"), 2);
	assert_int_equal(in(t, UART_IIR), UART_IIR_FIFO_ON | UART_IIR_RDI);
	for (int i = 0; i < 3; i++)
		in(t, UART_RBR);
	assert_int_equal(in(t, UART_IIR), UART_IIR_FIFO_ON | UART_IIR_CTI);
	assert_int_equal(irq(t), 1);
	in(t, UART_RBR);
	assert_int_equal(in(t, UART_IIR), UART_IIR_FIFO_ON | UART_IIR_NO_INT);
	assert_int_equal(irq(t), 0);
}

static void test_iir_priority(void **state)
{
	struct t *t = *state;
	out(t, UART_FCR, UART_FCR_ENABLE);
	/* Entering loopback changes CTS and DSR (RTS/DTR are off): modem status deltas. */
	out(t, UART_MCR, UART_MCR_LOOP | UART_MCR_OUT2);
	for (int i = 0; i < 17; i++) /* 16 in the FIFO, then an overrun */
		out(t, UART_RBR, (uint8_t)i);
	assert_int_equal(irq(t), 0); /* nothing enabled yet */
	out(t, UART_IER, 0x0f);
	assert_int_equal(irq(t), 1);
	assert_int_equal(t->fp.irq_raises[GSI_COM1], 1);

	assert_int_equal(in(t, UART_IIR), UART_IIR_FIFO_ON | UART_IIR_RLSI);
	in(t, UART_LSR); /* clears OE */
	assert_int_equal(in(t, UART_IIR), UART_IIR_FIFO_ON | UART_IIR_RDI);
	for (int i = 0; i < 16; i++)
		assert_int_equal(in(t, UART_RBR), i);
	assert_int_equal(irq(t), 1);
	/* THRE is next; reading IIR while it reports THRE clears it. */
	assert_int_equal(in(t, UART_IIR), UART_IIR_FIFO_ON | UART_IIR_THRI);
	uint8_t msr_iir = in(t, UART_IIR);
	assert_int_equal(msr_iir, UART_IIR_FIFO_ON | UART_IIR_MSI);
	assert_int_equal(irq(t), 1);
	uint8_t msr = in(t, UART_MSR);
	assert_int_equal(msr & 0x0f, UART_MSR_DCTS | UART_MSR_DDSR);
	assert_int_equal(msr & 0xf0, UART_MSR_DCD); /* OUT2 -> DCD */
	assert_int_equal(in(t, UART_IIR), UART_IIR_FIFO_ON | UART_IIR_NO_INT);
	assert_int_equal(irq(t), 0);
	assert_int_equal(t->fp.irq_raises[GSI_COM1], 1);
}

static void test_irq_gated_by_out2(void **state)
{
	struct t *t = *state;
	out(t, UART_IER, UART_IER_RDI);
	assert_int_equal(rx(t, "a"), 1);
	assert_int_equal(in(t, UART_IIR), UART_IIR_RDI);
	assert_int_equal(irq(t), 0);
	out(t, UART_MCR, UART_MCR_OUT2 | UART_MCR_DTR | UART_MCR_RTS);
	assert_int_equal(irq(t), 1);
	out(t, UART_IER, 0);
	assert_int_equal(irq(t), 0);
	out(t, UART_IER, UART_IER_RDI);
	assert_int_equal(irq(t), 1);
	assert_int_equal(in(t, UART_RBR), 'a');
	assert_int_equal(irq(t), 0);
	assert_int_equal(t->fp.irq_raises[GSI_COM1], 2);
}

/* What Linux's serial8250_do_startup checks before trusting the THRE interrupt. */
static void test_thre_rearm(void **state)
{
	struct t *t = *state;
	out(t, UART_MCR, UART_MCR_OUT2);
	out(t, UART_IER, UART_IER_THRI);
	assert_int_equal(irq(t), 1);
	assert_int_equal(in(t, UART_IIR), UART_IIR_THRI);
	assert_int_equal(irq(t), 0);
	assert_int_equal(in(t, UART_IIR), UART_IIR_NO_INT);
	out(t, UART_IER, 0);
	out(t, UART_IER, UART_IER_THRI);
	assert_int_equal(in(t, UART_IIR), UART_IIR_THRI);
	/* Rewriting IER with THRI already on does not re-arm; a THR write does. */
	out(t, UART_IER, UART_IER_THRI);
	assert_int_equal(in(t, UART_IIR), UART_IIR_NO_INT);
	out(t, UART_RBR, 'z');
	assert_int_equal(irq(t), 1);
	assert_int_equal(in(t, UART_IIR), UART_IIR_THRI);
	assert_int_equal(irq(t), 0);
	assert_int_equal(t->fp.irq_raises[GSI_COM1], 3);
}

static void test_loopback(void **state)
{
	struct t *t = *state;
	/* Linux autoconfig's loopback check: MCR = LOOP | OUT2 | RTS gives MSR[7:4] = 0x9. */
	out(t, UART_MCR, UART_MCR_LOOP | 0x0a);
	assert_int_equal(in(t, UART_MSR) & 0xf0, 0x90);
	out(t, UART_MCR, UART_MCR_LOOP | UART_MCR_DTR | UART_MCR_OUT1);
	uint8_t msr = in(t, UART_MSR);
	assert_int_equal(msr & 0xf0, UART_MSR_DSR | UART_MSR_RI);
	assert_int_equal(msr & 0x0f, UART_MSR_DCTS | UART_MSR_DDSR | UART_MSR_DDCD);
	out(t, UART_MCR, UART_MCR_LOOP | UART_MCR_DTR);
	assert_int_equal(in(t, UART_MSR), UART_MSR_DSR | UART_MSR_TERI);
	assert_int_equal(in(t, UART_MSR), UART_MSR_DSR);

	/* Transmitted bytes come back, and do not reach the sink; the input line is off. */
	out(t, UART_RBR, 'L');
	assert_int_equal(in(t, UART_LSR) & UART_LSR_DR, UART_LSR_DR);
	assert_int_equal(in(t, UART_RBR), 'L');
	assert_int_equal(rx(t, "ext"), 0);
	uart_flush(&t->u);
	assert_int_equal(t->sink.len, 0);

	/* Break in loopback: a NUL with BI. */
	out(t, UART_FCR, UART_FCR_ENABLE);
	out(t, UART_LCR, UART_LCR_SBC | 0x03);
	uint8_t lsr = in(t, UART_LSR);
	assert_true(lsr & UART_LSR_BI);
	assert_true(lsr & UART_LSR_DR);
	assert_int_equal(in(t, UART_RBR), 0);
	assert_int_equal(in(t, UART_LSR) & UART_LSR_BI, 0);

	/* Leaving loopback reconnects the input, and tells the producer it refused earlier. */
	assert_int_equal(t->sink.rx_ready, 0);
	out(t, UART_MCR, 0);
	assert_int_equal(t->sink.rx_ready, 1);
	assert_int_equal(in(t, UART_MSR) & 0xf0, UART_MSR_CTS | UART_MSR_DSR | UART_MSR_DCD);
	assert_int_equal(rx(t, "ext"), 3);
}

static void test_sink_immediate(void **state)
{
	struct t *t = *state;
	const char *msg = "hello";
	/* Every THR write reaches the sink at once: nothing waits for a later access (a guest
	 * that prints its last byte and halts must still be heard). */
	for (size_t i = 0; i < 5; i++) {
		out(t, UART_RBR, (uint8_t)msg[i]);
		assert_int_equal(t->sink.writes, i + 1);
		assert_int_equal(t->sink.len, i + 1);
	}
	assert_memory_equal(t->sink.buf, "hello", 5);
	assert_true(in(t, UART_LSR) & UART_LSR_THRE);
	assert_int_equal(t->sink.writes, 5);
	uart_flush(&t->u);
	assert_int_equal(t->sink.len, 5);

	/* A 2-byte access is two byte accesses: THR then IER. */
	uint16_t w = 0x0100 | '?';
	assert_true(bus_write(&t->fp.pio, PORT_COM1, &w, 2));
	assert_int_equal(in(t, UART_IER), 1);
	assert_int_equal(t->sink.len, 6);
	assert_int_equal(t->sink.buf[5], '?');
}

static void test_rx_backpressure(void **state)
{
	struct t *t = *state;
	const char *data = "abcdefghijklmnopqrstuvwxyz";
	size_t off = 0;

	out(t, UART_FCR, UART_FCR_ENABLE);
	off += (size_t)rx(t, data);
	assert_int_equal(off, 16);
	for (int i = 0; i < 15; i++)
		assert_int_equal(in(t, UART_RBR), data[i]);
	assert_int_equal(t->sink.rx_ready, 0); /* told once it is drained, not per byte */
	assert_int_equal(in(t, UART_RBR), data[15]);
	assert_int_equal(t->sink.rx_ready, 1);
	off += (size_t)rx(t, data + off);
	assert_int_equal(off, 26);
	for (int i = 16; i < 26; i++)
		assert_int_equal(in(t, UART_RBR), data[i]);
	/* Everything was accepted: no further notification. */
	assert_int_equal(t->sink.rx_ready, 1);
}

/* The register dance of Linux's 8250 autoconfig(), which must conclude "16550A". */
static void test_linux_autoconfig(void **state)
{
	struct t *t = *state;

	out(t, UART_IER, 0);
	uint8_t s2 = in(t, UART_IER) & 0x0f;
	out(t, UART_IER, 0x0f);
	uint8_t s3 = in(t, UART_IER) & 0x0f;
	out(t, UART_IER, 0);
	assert_int_equal(s2, 0);
	assert_int_equal(s3, 0x0f);

	uint8_t save_mcr = in(t, UART_MCR);
	out(t, UART_MCR, UART_MCR_LOOP | 0x0a);
	assert_int_equal(in(t, UART_MSR) & 0xf0, 0x90);
	out(t, UART_MCR, save_mcr);

	out(t, UART_LCR, 0xbf);
	out(t, UART_IIR, 0); /* EFR on enhanced parts; FCR here */
	out(t, UART_LCR, 0);
	out(t, UART_FCR, UART_FCR_ENABLE);
	assert_int_equal(in(t, UART_IIR) >> 6, 3); /* FIFO: a 16550A candidate */

	/* autoconfig_16550a: no EFR behind LCR 0x80 or 0xbf... */
	out(t, UART_LCR, 0x80);
	assert_int_not_equal(in(t, UART_IIR), 0);
	out(t, UART_LCR, 0xbf);
	assert_int_not_equal(in(t, UART_IIR), 0);
	/* ...not a National SuperIO (IIR does not follow MCR.LOOP under LCR 0xe0)... */
	out(t, UART_LCR, 0);
	uint8_t st1 = in(t, UART_MCR);
	out(t, UART_LCR, 0xe0);
	uint8_t st2 = in(t, UART_IIR);
	assert_int_equal((st1 ^ st2) & UART_MCR_LOOP, 0);
	out(t, UART_LCR, 0);
	out(t, UART_MCR, st1 ^ UART_MCR_LOOP);
	out(t, UART_LCR, 0xe0);
	st2 = in(t, UART_IIR);
	out(t, UART_LCR, 0);
	out(t, UART_MCR, st1);
	assert_int_equal((st1 ^ st2) & UART_MCR_LOOP, 0);
	/* ...not a TI16750 (IIR bit 5 never set)... */
	out(t, UART_FCR, UART_FCR_ENABLE | 0x20);
	assert_int_equal(in(t, UART_IIR) >> 5, 6);
	out(t, UART_LCR, 0x80);
	out(t, UART_FCR, UART_FCR_ENABLE | 0x20);
	assert_int_equal(in(t, UART_IIR) >> 5, 6);
	out(t, UART_FCR, UART_FCR_ENABLE);
	out(t, UART_LCR, 0);
	/* ...and not an XScale (IER bit 6 does not stick). */
	out(t, UART_IER, 0x40);
	assert_int_equal(in(t, UART_IER) & 0x40, 0);
	/* serial8250_startup: LSR must not read 0xff. */
	assert_int_not_equal(in(t, UART_LSR), 0xff);
	assert_int_equal(t->sink.len, 0);
}

static void test_save_load(void **state)
{
	struct t *t = *state;
	struct uart_state st;
	struct fake_platform fp2;
	struct uart8250 u2;
	struct sink_rec sink2 = {.len = 0};

	out(t, UART_FCR, UART_FCR_ENABLE | 0x80);
	out(t, UART_LCR, UART_LCR_DLAB);
	out(t, UART_RBR, 0x34);
	out(t, UART_IER, 0x12);
	out(t, UART_LCR, 0x1b);
	out(t, UART_MCR, UART_MCR_OUT2 | UART_MCR_RTS);
	out(t, UART_SCR, 0x77);
	out(t, UART_IER, UART_IER_RDI);
	out(t, UART_RBR, 'q'); /* pending output is flushed by save */
	assert_int_equal(rx(t, "xyz"), 3);
	in(t, UART_RBR);
	uart_save(&t->u, &st);
	assert_int_equal(t->sink.len, 1);

	fake_platform_init(&fp2, 0, 4096);
	assert_int_equal(uart_init(&u2, &fp2.plat, &rec_ops, &sink2), 0);
	assert_int_equal(uart_load(&u2, &st), 0);
	assert_int_equal(fp2.irq_level[GSI_COM1], 1);
	uint8_t v;
#define IN2(reg) (bus_read(&fp2.pio, PORT_COM1 + (reg), &v, 1), v)
	assert_int_equal(IN2(UART_LCR), 0x1b);
	assert_int_equal(IN2(UART_MCR), UART_MCR_OUT2 | UART_MCR_RTS);
	assert_int_equal(IN2(UART_SCR), 0x77);
	assert_int_equal(IN2(UART_IER), UART_IER_RDI);
	assert_int_equal(IN2(UART_IIR), UART_IIR_FIFO_ON | UART_IIR_CTI);
	assert_int_equal(IN2(UART_RBR), 'y');
	assert_int_equal(IN2(UART_RBR), 'z');
	assert_int_equal(IN2(UART_LSR) & UART_LSR_DR, 0);
	assert_int_equal(fp2.irq_level[GSI_COM1], 0);
	v = UART_LCR_DLAB;
	bus_write(&fp2.pio, PORT_COM1 + UART_LCR, &v, 1);
	assert_int_equal(IN2(UART_RBR), 0x34);
	assert_int_equal(IN2(UART_IER), 0x12);
#undef IN2

	struct uart_state bad = st;
	bad.version = 2;
	assert_int_equal(uart_load(&u2, &bad), -EINVAL);
	bad = st;
	bad.rx_count = 17;
	assert_int_equal(uart_load(&u2, &bad), -EINVAL);
	bad = st;
	bad.fcr = 0;
	bad.rx_count = 2; /* FIFOs off hold one byte */
	assert_int_equal(uart_load(&u2, &bad), -EINVAL);
	uart_fini(&u2);
	fake_platform_fini(&fp2);
}

static void test_reset(void **state)
{
	struct t *t = *state;
	out(t, UART_MCR, UART_MCR_OUT2);
	out(t, UART_IER, UART_IER_THRI);
	assert_int_equal(irq(t), 1);
	out(t, UART_RBR, 'r');
	uart_reset(&t->u);
	assert_int_equal(irq(t), 0);
	assert_int_equal(t->sink.len, 1);
	assert_int_equal(in(t, UART_IER), 0);
	assert_int_equal(in(t, UART_MCR), 0);
}

/* The I/O thread feeding the UART while a "vCPU" drains it: nothing lost, nothing stalls. */
struct producer {
	struct uart8250 *u;
	sem_t room;
	const uint8_t *data;
	size_t len;
	unsigned posts;
};

static void sem_rx_ready(void *ctx)
{
	struct producer *p = ctx;
	p->posts++;
	sem_post(&p->room);
}

static const struct uart_sink_ops sem_ops = {.rx_ready = sem_rx_ready};

static void *producer_main(void *arg)
{
	struct producer *p = arg;
	size_t off = 0;
	while (off < p->len) {
		size_t want = MIN(p->len - off, 100);
		int n = uart_receive(p->u, p->data + off, want);
		off += (size_t)n;
		if ((size_t)n < want)
			sem_wait(&p->room); /* refused some: the drain will post */
	}
	return NULL;
}

static void test_concurrent_rx(void **state)
{
	struct t *t = *state;
	enum { N = 20000 };
	uint8_t *data = malloc(N);
	struct producer p = {.u = &t->u, .data = data, .len = N};
	pthread_t th;
	size_t got = 0;

	for (size_t i = 0; i < N; i++)
		data[i] = (uint8_t)(i * 13 + (i >> 8));
	assert_int_equal(sem_init(&p.room, 0, 0), 0);
	uart_set_sink(&t->u, &sem_ops, &p);
	out(t, UART_FCR, UART_FCR_ENABLE);
	assert_int_equal(pthread_create(&th, NULL, producer_main, &p), 0);
	while (got < N) {
		if (in(t, UART_LSR) & UART_LSR_DR)
			assert_int_equal(in(t, UART_RBR), data[got++]);
		else
			sched_yield();
	}
	pthread_join(th, NULL);
	assert_true(p.posts >= N / 100); /* the producer really was held back */
	assert_int_equal(in(t, UART_LSR) & (UART_LSR_DR | UART_LSR_OE), 0);
	sem_destroy(&p.room);
	free(data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_reset_values, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_divisor_latch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lsr_bits, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fifo, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_trigger_and_timeout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_iir_priority, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_irq_gated_by_out2, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_thre_rearm, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_loopback, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sink_immediate, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rx_backpressure, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_linux_autoconfig, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_save_load, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent_rx, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
