/* SPDX-License-Identifier: MIT */
/* COM1 console (polled 8250) and a small printf: %d %i %u %x %X %p %s %c %% with l/ll/z,
 * zero padding and width. Output lines are atomic across CPUs. */
#include "probe.h"

#define UART_RBR 0
#define UART_THR 0
#define UART_IER 1
#define UART_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_SCR 7
#define LSR_DR 0x01
#define LSR_THRE 0x20

static volatile uint32_t console_lock;
static volatile uint32_t console_owner = 0xffffffff;

void serial_init(void)
{
	outb(PORT_COM1 + UART_IER, 0);
	outb(PORT_COM1 + UART_LCR, 0x80); /* DLAB */
	outb(PORT_COM1 + 0, 1);		  /* 115200 */
	outb(PORT_COM1 + 1, 0);
	outb(PORT_COM1 + UART_LCR, 0x03); /* 8N1 */
	outb(PORT_COM1 + UART_FCR, 0x07); /* FIFO on, both cleared */
	outb(PORT_COM1 + UART_MCR, 0x0b); /* DTR, RTS, OUT2 */
}

static void serial_put_raw(char c)
{
	/* Bounded: a UART that never drains must not hang the probe (the runner notices). */
	for (unsigned i = 0; i < 1000000 && !(inb(PORT_COM1 + UART_LSR) & LSR_THRE); i++)
		cpu_relax();
	outb(PORT_COM1 + UART_THR, (uint8_t)c);
}

void serial_putc(char c)
{
	if (c == '\n')
		serial_put_raw('\r');
	serial_put_raw(c);
}

bool serial_getc_timeout(char *c, uint64_t timeout_us)
{
	uint64_t end = time_us() + timeout_us;
	do {
		if (inb(PORT_COM1 + UART_LSR) & LSR_DR) {
			*c = (char)inb(PORT_COM1 + UART_RBR);
			return true;
		}
		cpu_relax();
	} while (time_us() < end);
	return false;
}

/* ---- formatting ---------------------------------------------------------------------------- */
struct out {
	char *buf;
	size_t n, len;
};

static void out_c(struct out *o, char c)
{
	if (o->len + 1 < o->n)
		o->buf[o->len] = c;
	o->len++;
}

static void out_num(struct out *o, uint64_t v, unsigned base, bool upper, bool neg, unsigned width,
		    char pad, bool left)
{
	char tmp[24];
	unsigned n = 0;
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	do {
		tmp[n++] = digits[v % base];
		v /= base;
	} while (v);
	if (neg)
		tmp[n++] = '-';
	width = width > n ? width - n : 0;
	while (!left && width) {
		out_c(o, pad);
		width--;
	}
	while (n)
		out_c(o, tmp[--n]);
	while (width--)
		out_c(o, ' ');
}

int vsnprintf(char *buf, size_t n, const char *fmt, va_list ap)
{
	struct out o = { buf, n, 0 };
	for (; *fmt; fmt++) {
		unsigned width = 0, lng = 0;
		char pad = ' ';
		bool left = false;
		if (*fmt != '%') {
			out_c(&o, *fmt);
			continue;
		}
		fmt++;
		if (*fmt == '-') {
			left = true;
			fmt++;
		}
		if (*fmt == '0') {
			pad = '0';
			fmt++;
		}
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (unsigned)(*fmt++ - '0');
		while (*fmt == 'l' || *fmt == 'z') {
			lng++;
			fmt++;
		}
		switch (*fmt) {
		case 'd':
		case 'i': {
			int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
			out_num(&o, v < 0 ? 0 - (uint64_t)v : (uint64_t)v, 10, false, v < 0, width, pad, left);
			break;
		}
		case 'u':
		case 'x':
		case 'X': {
			uint64_t v = lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
			out_num(&o, v, *fmt == 'u' ? 10 : 16, *fmt == 'X', false, width, pad, left);
			break;
		}
		case 'p':
			out_c(&o, '0');
			out_c(&o, 'x');
			out_num(&o, (uint64_t)(uintptr_t)va_arg(ap, void *), 16, false, false, width, pad, left);
			break;
		case 's': {
			const char *s = va_arg(ap, const char *);
			size_t l;
			if (!s)
				s = "(null)";
			l = strlen(s);
			width = width > l ? width - (unsigned)l : 0;
			while (!left && width) {
				out_c(&o, ' ');
				width--;
			}
			while (*s)
				out_c(&o, *s++);
			while (width--)
				out_c(&o, ' ');
			break;
		}
		case 'c':
			out_c(&o, (char)va_arg(ap, int));
			break;
		case '%':
			out_c(&o, '%');
			break;
		case 0:
			fmt--;
			break;
		default:
			out_c(&o, '%');
			out_c(&o, *fmt);
			break;
		}
	}
	if (n)
		buf[o.len < n ? o.len : n - 1] = 0;
	return (int)o.len;
}

int snprintf(char *buf, size_t n, const char *fmt, ...)
{
	va_list ap;
	int r;
	va_start(ap, fmt);
	r = vsnprintf(buf, n, fmt, ap);
	va_end(ap);
	return r;
}

int vprintf(const char *fmt, va_list ap)
{
	char buf[512];
	int r = vsnprintf(buf, sizeof(buf), fmt, ap);
	uint32_t me = lapic_id();
	bool nested = console_owner == me;
	if (!nested) {
		spin_lock(&console_lock);
		console_owner = me;
	}
	for (const char *p = buf; *p; p++)
		serial_putc(*p);
	if (!nested) {
		console_owner = 0xffffffff;
		spin_unlock(&console_lock);
	}
	return r;
}

int printf(const char *fmt, ...)
{
	va_list ap;
	int r;
	va_start(ap, fmt);
	r = vprintf(fmt, ap);
	va_end(ap);
	return r;
}
