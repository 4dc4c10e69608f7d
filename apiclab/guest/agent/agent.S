/*
 * apiclab bare-metal agent: one 64 KiB ROM image for every backend (KVM, QEMU -bios, Bochs romimage).
 *
 * The ROM sits at physical 0xF0000-0xFFFFF (and, on a PC, aliased below 4 GiB). The CPU leaves reset
 * at F000:FFF0 in real mode (SDM vol. 3A 325384-059US §9.1.4 "First Instruction Executed"), jumps
 * here, copies the guest program (apiclab/guest/program.py, binary form) from PROGRAM_SLOT into low
 * RAM and interprets it step by step. Two modes, chosen by the program header:
 *
 *   mode 0  real mode, local APIC in x2APIC mode through RDMSR/WRMSR (SDM §10.12)
 *   mode 1  32-bit protected mode, xAPIC through MMIO at 0xFEE00000 (SDM §10.4.1) -- for APICs
 *           without x2APIC, e.g. QEMU 7.2 TCG
 *
 * The interpreter, the interrupt handler and the log writer are written once, as the macro AGENT,
 * and assembled twice: as 16-bit code (mode 0) and 32-bit code (mode 1). Both use only 32-bit
 * registers and addresses below 64 KiB, so in real mode DS = ES = SS = 0 reach the same data at the
 * same offsets as the flat protected-mode segments do. In protected mode CS has base 0xF0000, so ROM
 * labels are the same offsets in both modes.
 *
 * Reporting (one mechanism every backend has): each event is one text line written with REP OUTSB
 * to I/O port 0xE9 (Bochs port_e9_hack, QEMU isa-debugcon, a KVM_EXIT_IO on KVM), in the form
 *   "@" tag tsc(16 hex) fields... "\n"          decoded by apiclab/guest/agent/log.py
 * The run ends with a write to port 0x501 (QEMU isa-debug-exit) and "Shutdown" to port 0x8900
 * (Bochs); on KVM the first is an I/O exit the host stops at.
 *
 * Several CPUs: CPU k > 0 writes its lines to port PORT_LOG_AP + k instead (QEMU: an isa-debugcon
 * each; KVM: the vCPU's own I/O exits). An emulator with no device there (Bochs has only 0xE9)
 * sets the ROM's byte `relay_flag` (image.RELAY_FLAG_OFFSET): then CPU k > 0 appends its lines to
 * a buffer in its own RAM, and the CPU that stops the machine first relays every buffer to port
 * 0xE9, each after a line "=" k(2 hex) ("!" added when it overflowed), then "=00": the host splits
 * the stream there (log.split_relayed) and sees what each CPU's own port would have carried.
 */

        .set ROM_SEGMENT,     0xF000
        .set ROM_BASE,        0xF0000     /* ROM_SEGMENT << 4: the ROM's physical address */
        .set PROGRAM_SLOT,    0xC000      /* ROM offset of the program; image.PROGRAM_OFFSET */
        .set PROGRAM_SIZE,    0x1200      /* 16 + 256 + 256 * 16 = 0x1110 bytes at most */

        /* low RAM, all below 64 KiB (real-mode DS = 0 reaches it) */
        .set BUF_MAIN,        0x0500      /* log line built by the interpreter */
        .set BUF_IRQ,         0x0800      /* log line built by the interrupt handler */
        .set BUF_NMI,         0x5000      /* ... by the NMI handler (vector 2) */
        .set VAR_TIMED_OUT,   0x0B00      /* byte: the last WAIT timed out */
        .set VAR_IDTR,        0x0B10      /* 6-byte IDT pseudo-descriptor (protected mode) */
        .set VAR_GP_ARMED,    0x0B20      /* byte: an RDMSR/WRMSR step may #GP; catch it */
        .set VAR_GP_ESP,      0x0B24      /* dword: the step's ESP, to resume at after a #GP */
        .set VAR_CPU,         0x0B30      /* dword: this CPU's index k (its initial APIC ID) */
        .set VAR_MINE,        0x0B34      /* byte: the step running is this CPU's turn */
        .set VAR_RELAY_LEN,   0x0B38      /* dword: bytes this CPU put in RELAY_LOG; zero at
                                           * power-on and kept when INIT restarts the CPU */
        .set RELAY_LOG,       0x8000      /* relay mode: CPU k > 0's lines, in its own 64 KiB */
        .set RELAY_LOG_SIZE,  0x8000
        /* several CPUs (program version 2): CPU k keeps all the data above in its own 64 KiB at
         * k * 0x10000 (real mode: DS = ES = SS = k << 12; protected mode: a data segment based
         * there), so the one agent runs unchanged on each. Shared, at a physical address reached
         * through FS (0 in real mode, the flat segment in protected mode): the index of the step
         * whose turn it is. RAM is zero at power-on, so it starts at step 0. */
        .set SHARED_NEXT,     0x0BC0      /* dword, physical */
        .set SHARED_END,      0x0BC4      /* dword: the CPU running END has reached it */
        .set SHARED_ACKS,     0x0BD0      /* byte[MAX_CPUS]: CPU k has seen SHARED_END, idle */
        .set SHARED_RELAY,    0x0BC8      /* dword: a CPU has begun relaying the logs (exit) */
        .set END_GRACE,       0x40000000  /* TSC ticks END waits at most for the others */
        .set MAX_CPUS,        8           /* program.MAX_CPUS */
        .set COUNTS,          0x1000      /* u32 count[256], one per vector */
        .set PROGRAM,         0x2000      /* copy of the program */
        .set HANDLER_FLAGS,   PROGRAM + 16
        .set STEPS,           PROGRAM + 16 + 256
        .set IDT,             0x4000      /* 256 interrupt gates (protected mode) */
        .set STACK_TOP,       0x7000
        /* batch mode (batch_select below): the host's table of programs and the agent's state */
        .set BATCH_TABLE,     0x10000     /* "APBT", u32 count, u16 segment[count]; batch.py */
        .set BATCH_TABLE_SMP, 0x90000     /* relay mode: a table of programs for several CPUs,
                                           * above the CPUs' 64 KiB each (CPU 1's is 0x10000) */
        .set BATCH_STATE,     0x0B80      /* "APBI", u32 next case, u32 count: kept over resets */
        .set BATCH_TABLE_MAGIC, 0x54425041  /* "APBT" */
        .set BATCH_STATE_MAGIC, 0x49425041  /* "APBI" */
        .set PORT_RESET,      0xCF9       /* PIIX reset control register */

        .set PORT_LOG,        0xE9
        .set PORT_LOG_AP,     0x7E0       /* CPU k > 0 logs to PORT_LOG_AP + k (program.py) */
        .set SHARED_SIPI,     0x0BCC      /* dword, physical: CPU 0 has sent the start-up IPI */
        .set SIPI_START,      0x000C46F0  /* ICR: SIPI to all excluding self, vector 0xF0 */
        .set PORT_EXIT,       0x501
        .set PORT_BOCHS,      0x8900

        .set MSR_APIC_BASE,   0x1B        /* SDM §10.4.4 */
        .set MSR_TSC_DEADLINE, 0x6E0      /* SDM §10.5.4.1 */
        .set APIC_MMIO,       0xFEE00000

        .set OP_END, 0
        .set OP_WRITE, 1
        .set OP_READ, 2
        .set OP_STI, 3
        .set OP_CLI, 4
        .set OP_HLT, 5
        .set OP_WAIT, 6
        .set OP_TSC_DEADLINE, 7
        .set OP_BUGCHECK_IF_TIMEOUT, 8
        .set OP_PAUSE, 9
        .set OP_OUT, 10
        .set OP_IN, 11
        .set OP_MMIO_WRITE, 12
        .set OP_MMIO_READ, 13
        .set OP_RDMSR, 14
        .set OP_WRMSR, 15
        .set OP_STI_HLT, 16
        .set OP_LINT1_PULSE, 17

        /* LINT1_PULSE's handshake with the host (program.py LINT1_*): COM1, a 16550 UART */
        .set COM1,            0x3F8       /* transmitter (write) / receiver (read) */
        .set COM1_LSR,        0x3FD       /* line status: bit 0 data ready */
        .set LINT1_MARKER,    'L'
        .set LINT1_ACK,       'K'
        .set LINT1_WAIT_HIGH, 1           /* 1 << 32 TSC ticks: program.LINT1_WAIT_TICKS */

        .text
        .code16

/* ---- real-mode entry, common to both modes ------------------------------------------------- */
        .globl start
start:
        cli
        cld
        movl    $1, %eax                  /* CPU k: its initial APIC ID, CPUID.01H:EBX[31:24] */
        cpuid                             /* (SDM vol. 2A CPUID; 0 on a one-CPU machine) */
        shrl    $24, %ebx
        cmpl    $MAX_CPUS, %ebx
        jae     park
        movl    %ebx, %eax
        shll    $12, %eax                 /* its data segment: k * 0x10000 */
        movw    %ax, %ss
        movl    $STACK_TOP, %esp
        movw    %ax, %es
        movl    %ebx, %es:VAR_CPU
        movw    %cs, %ax
        movw    %ax, %ds
        testl   %ebx, %ebx
        jnz     2f
        call    batch_select              /* batch mode: DS moved to the next case's program */
        jmp     1f
2:      call    batch_current             /* an AP in a batch: DS to the case CPU 0 runs */
1:
        /* copy the program from ROM into RAM: its header, handler table and steps only, in
         * dwords (a KVM that emulates real mode runs one emulation per REP iteration) */
        movl    PROGRAM_SLOT + 8, %ecx    /* header: step count */
        cmpl    $((PROGRAM_SIZE - 272) / 16), %ecx
        jbe     1f
        movl    $((PROGRAM_SIZE - 272) / 16), %ecx  /* no valid program: the magic check fails */
1:      shll    $2, %ecx                  /* 16 bytes = 4 dwords per step */
        addl    $(272 / 4), %ecx          /* + header and handler table */
        movl    $PROGRAM_SLOT, %esi
        movl    $PROGRAM, %edi
        rep movsl
        movw    %es, %ax
        movw    %ax, %ds
        xorl    %eax, %eax
        movw    %ax, %fs                  /* FS = 0: physical addresses (SHARED_NEXT) */
        movl    $COUNTS, %edi             /* count[v] = 0; ROM is not writable on QEMU */
        movl    $0x100, %ecx
        rep stosl
        movb    %al, VAR_TIMED_OUT
        movb    %al, VAR_MINE             /* (a CPU restarted by INIT and SIPI starts here too) */
        cmpl    $0x47525041, PROGRAM      /* "APRG" */
        jne     r_bad_program
        movb    PROGRAM + 6, %al          /* header: mode */
        cmpb    $1, %al
        je      to_protected_mode
        cmpb    $0, %al
        jne     r_bad_program

        /* mode 0: IVT entry v -> F000:stubs16 + 8v, then x2APIC on. The IDTR points at the
         * table in ROM, which every CPU shares: in real mode the table is wherever the IDTR's
         * base says, and LIDT sets it (SDM §20.1.4), so nothing is built or copied (a REP MOVSL
         * of its 256 entries cost 60-120 us on kvm_pvm, which emulates real mode one iteration
         * at a time). */
        movw    $0x3FF, VAR_IDTR
        movl    $(ROM_BASE + ivt16), VAR_IDTR + 2
        lidtl   VAR_IDTR
        /* IA32_APIC_BASE: EN (bit 11) and EXTD (bit 10): xAPIC -> x2APIC is a legal transition
         * (SDM §10.12.5, Figure 10-27) */
        movl    $MSR_APIC_BASE, %ecx
        rdmsr
        orl     $0xC00, %eax
        wrmsr
        jmp     r_interp

to_protected_mode:
        /* SDM §9.9.1 "Switching to Protected Mode": GDT, CR0.PE, far jump */
        lgdtl   %cs:gdt_descriptor
        movl    %cr0, %eax
        orl     $1, %eax
        movl    %eax, %cr0
        ljmpl   $0x08, $pm_entry

        .balign 8
gdt:    .quad   0
        /* 0x08: 32-bit code, base 0xF0000 (so ROM offsets are the same as in real mode), 64 KiB */
        .word   0xFFFF, 0x0000
        .byte   0x0F, 0x9A, 0x40, 0x00
        /* 0x10: 32-bit data, flat 4 GiB (reaches low RAM and the APIC page) */
        .word   0xFFFF, 0x0000
        .byte   0x00, 0x92, 0xCF, 0x00
        /* 0x10 + 8k, k = 1..7: CPU k's data, 64 KiB at k * 0x10000 */
        .set cpu, 1
        .rept MAX_CPUS - 1
        .word   0xFFFF, 0x0000
        .byte   cpu, 0x92, 0x40, 0x00
        .set cpu, cpu + 1
        .endr
gdt_end:
gdt_descriptor:
        .word   gdt_end - gdt - 1
        .long   0xF0000 + gdt

        .code32
pm_entry:
        movl    $1, %eax                  /* k again, as at start */
        cpuid
        shrl    $24, %ebx
        leal    0x10(,%ebx,8), %eax       /* this CPU's data segment (0x10, flat, for CPU 0) */
        movw    %ax, %ds
        movw    %ax, %es
        movw    $0x10, %ax                /* FS: flat, for the APIC page, MMIO and SHARED_NEXT */
        movw    %ax, %fs
        movw    %ax, %gs
        /* SS flat too, the stack in this CPU's 64 KiB by ESP: with SS based elsewhere, this host's
         * KVM (which emulates unpaged protected mode, docs/host.md) was seen to push an interrupt's
         * frame where the handler does not find it (the AP's RET then lands in real-mode code) */
        movw    %ax, %ss
        shll    $16, %ebx                 /* the data's physical base, for the IDTR and ESP */
        leal    STACK_TOP(%ebx), %esp
        /* IDT: 256 32-bit interrupt gates (IF cleared on entry) to stubs32 + 16v (SDM §6.11) */
        movl    $IDT, %edi
        movl    $stubs32, %eax
        movl    $256, %ecx
1:      movw    %ax, (%edi)
        movw    $0x08, 2(%edi)
        movw    $0x8E00, 4(%edi)
        movw    $0, 6(%edi)
        addl    $16, %eax
        addl    $8, %edi
        loop    1b
        movw    $0x7FF, VAR_IDTR
        leal    IDT(%ebx), %eax
        movl    %eax, VAR_IDTR + 2
        lidt    VAR_IDTR
        jmp     p_interp

/* ---- the interpreter, handler and log writer, once per mode -------------------------------- */

/* AGENT p, m: p is the label prefix, m the mode (0 x2APIC real mode, 1 xAPIC protected mode) */
        .macro AGENT p, m

/* apic_read: ECX = xAPIC register offset -> EDX:EAX (ICR as one 64-bit value in both modes) */
\p\()apic_read:
        .if \m == 0
        shrl    $4, %ecx                  /* x2APIC MSR = 0x800 + offset >> 4 (SDM §10.12.1.2) */
        addl    $0x800, %ecx
        rdmsr
        .else
        xorl    %edx, %edx
        cmpl    $0x300, %ecx
        jne     1f
        movl    %fs:APIC_MMIO + 0x310, %edx
1:      movl    %fs:APIC_MMIO(%ecx), %eax
        .endif
        ret

/* apic_write: ECX = offset, EDX:EAX = value; xAPIC ICR: high dword first, the low write sends */
\p\()apic_write:
        .if \m == 0
        shrl    $4, %ecx
        addl    $0x800, %ecx
        wrmsr
        .else
        cmpl    $0x300, %ecx
        jne     1f
        movl    %edx, %fs:APIC_MMIO + 0x310
1:      movl    %eax, %fs:APIC_MMIO(%ecx)
        .endif
        ret

/* hex: ECX digits of EDX (an even count), most significant first, to ES:EDI; EAX kept. Two
 * digits per byte from the table hex_pairs: a KVM that emulates real mode (kvm_pvm) pays ~1 us for
 * each instruction, and a record's digits were a third of a storm cycle's instructions */
\p\()hex:
        pushl   %eax
        shrl    $1, %ecx
1:      roll    $8, %edx
        movzbl  %dl, %eax
        movw    %cs:hex_pairs(,%eax,2), %ax
        stosw
        loop    1b
        popl    %eax
        ret

\p\()hex8:                                /* AL */
        pushl   %ecx
        pushl   %edx
        movzbl  %al, %edx
        shll    $24, %edx
        movl    $2, %ecx
        call    \p\()hex
        popl    %edx
        popl    %ecx
        ret

\p\()hex32:                               /* EAX */
        pushl   %ecx
        pushl   %edx
        movl    %eax, %edx
        movl    $8, %ecx
        call    \p\()hex
        popl    %edx
        popl    %ecx
        ret

\p\()hex64:                               /* EDX:EAX */
        pushl   %eax
        movl    %edx, %eax
        call    \p\()hex32
        popl    %eax
        jmp     \p\()hex32

/* head: start a line at EDI (kept in EBP): "@", tag AL, TSC */
\p\()head:
        movl    %edi, %ebp
        movb    %al, %ah
        movb    $'@', %al
        stosb
        movb    %ah, %al
        stosb
        rdtsc
        jmp     \p\()hex64

/* emit: the line EBP..EDI plus "\n" to the log port in one REP OUTSB, with IF = 0 so that a
 * handler's line never lands inside the interpreter's */
\p\()emit:
        pushl   %esi
        pushl   %ecx
        pushl   %edx
        movb    $'\n', %al
        stosb
        movl    %ebp, %esi
        movl    %edi, %ecx
        subl    %ebp, %ecx
        movw    $PORT_LOG, %dx            /* CPU 0; each other CPU has a port of its own, so a */
        cmpl    $0, VAR_CPU               /* host can tell whose record it is (QEMU: one */
        je      1f                        /* isa-debugcon per CPU) */
        cmpb    $0, %cs:relay_flag        /* relay mode: into this CPU's RELAY_LOG instead */
        jne     2f
        movl    VAR_CPU, %edx
        addl    $PORT_LOG_AP, %edx
1:
        pushf
        cli
        rep outsb
        popf
3:      popl    %edx
        popl    %ecx
        popl    %esi
        ret
        /* the bytes are reserved first, by one XADD: an NMI whose handler logs while this line is
         * being copied puts its own line after it, not over it (the order the port would show);
         * an INIT during the copy leaves a cut line, as it would on the port. Full: not copied,
         * the relay reports the overflow. */
2:      pushl   %edi
        movl    %ecx, %edi
        xaddl   %edi, VAR_RELAY_LEN
        leal    (%edi,%ecx), %edx
        cmpl    $RELAY_LOG_SIZE, %edx
        ja      4f
        addl    $RELAY_LOG, %edi
        pushf
        cli
        rep movsb
        popf
4:      popl    %edi
        jmp     3b

/* exit: stop the machine on every backend */
\p\()exit:
        cli
        call    \p\()relay              /* relay mode: the other CPUs' logs to port 0xE9 */
        call    \p\()batch_reset        /* batch mode: a reset to the next case, if any */
        movw    $PORT_EXIT, %dx           /* QEMU isa-debug-exit; a KVM I/O exit */
        xorb    %al, %al
        outb    %al, %dx
        movw    $PORT_BOCHS, %dx          /* Bochs: "Shutdown" to 0x8900 */
        movl    $shutdown, %esi
1:      movb    %cs:(%esi), %al           /* code segments here are readable */
        testb   %al, %al
        jz      2f
        outb    %al, %dx
        incl    %esi
        jmp     1b
2:      hlt
        jmp     2b

/* relay: in relay mode (ROM byte relay_flag set) the first CPU here writes each other CPU k's
 * RELAY_LOG to port 0xE9 after a line "=" k(2 hex) ["!" if it overflowed], then "=00"; a CPU
 * that comes second waits with IF = 0 for the first to stop the machine. Returns at once
 * otherwise. Clobbers EAX, EBX, ECX, EDX, ESI, EDI. */
\p\()relay:
        cmpb    $0, %cs:relay_flag
        je      9f
        movl    $1, %eax
        xchgl   %eax, %fs:SHARED_RELAY
        testl   %eax, %eax
        jnz     8f
        movl    PROGRAM + 12, %ebx        /* the CPU count, at most MAX_CPUS */
        cmpl    $MAX_CPUS, %ebx
        jbe     1f
        movl    $MAX_CPUS, %ebx
1:      decl    %ebx                      /* EBX = k, from the last CPU down to 1 */
        jle     7f
        .if \m == 0
        movl    %ebx, %eax                /* CPU k's data: real mode k << 12, */
        shll    $12, %eax
        .else
        leal    0x10(,%ebx,8), %eax       /* protected mode its data segment */
        .endif
        pushw   %ds
        movw    %ax, %ds
        movl    VAR_RELAY_LEN, %ecx
        popw    %ds
        movl    $BUF_MAIN, %edi           /* "=" k(2) ["!"] "\n" */
        movl    %edi, %esi
        movb    $'=', %al
        stosb
        movb    %bl, %al
        call    \p\()hex8
        cmpl    $RELAY_LOG_SIZE, %ecx
        jbe     2f
        movl    $RELAY_LOG_SIZE, %ecx     /* what fits, the rest is lost: say so */
        movb    $'!', %al
        stosb
2:      movb    $'\n', %al
        stosb
        pushl   %ecx
        movl    %edi, %ecx
        subl    %esi, %ecx
        movw    $PORT_LOG, %dx
        rep outsb
        popl    %ecx
        .if \m == 0
        movl    %ebx, %eax
        shll    $12, %eax
        .else
        leal    0x10(,%ebx,8), %eax
        .endif
        pushw   %ds
        movw    %ax, %ds
        movl    $RELAY_LOG, %esi
        rep outsb
        popw    %ds
        jmp     1b
7:      movl    $BUF_MAIN, %edi           /* "=00": what follows is CPU 0's again */
        movl    %edi, %esi
        movb    $'=', %al
        stosb
        xorb    %al, %al
        call    \p\()hex8
        movb    $'\n', %al
        stosb
        movl    %edi, %ecx
        subl    %esi, %ecx
        movw    $PORT_LOG, %dx
        rep outsb
9:      ret
8:      hlt
        jmp     8b

/* batch_reset: with a batch running and cases left, a full system reset (PIIX reset control
 * register 0xCF9: 0x06 = SYS_RST | RST_CPU, a hard reset of the CPU and the chipset's devices);
 * the CPU comes back at the reset vector and batch_select picks the next case. Returns otherwise.
 * DS reaches BATCH_STATE in both modes (real mode DS = 0, protected mode flat). */
\p\()batch_reset:
        cmpl    $BATCH_STATE_MAGIC, BATCH_STATE
        jne     2f
        movl    BATCH_STATE + 4, %eax
        cmpl    BATCH_STATE + 8, %eax
        jae     2f
        movw    $PORT_RESET, %dx
        movb    $0x06, %al
        outb    %al, %dx
1:      hlt                               /* IF = 0: wait here for the reset to happen */
        jmp     1b
2:      ret

/* common interrupt handler; the stub pushed the vector (SDM §6.12.1: IF = 0 on entry) */
\p\()common:
        pushal
        movzbl  32(%esp), %ebx            /* vector, above the 8 saved registers */
        cmpl    $13, %ebx                 /* #GP of an RDMSR/WRMSR step: an event, not the end */
        jne     4f
        cmpb    $0, VAR_GP_ARMED
        jne     \p\()gp_caught
4:
        .if \m == 1
        cmpl    $2, %ebx                  /* NMI (vector 2, no error code): an interrupt like */
        je      5f                        /* the others, logged and counted (SDM §6.7) */
        cmpl    $32, %ebx                 /* protected mode: 0-31 are exceptions, some with an */
        jb      \p\()fault                /* error code: report and stop (SDM §6.15) */
5:
        .endif
        incl    COUNTS(,%ebx,4)
        movzbl  HANDLER_FLAGS(%ebx), %eax
        testb   $0x80, %al                /* HANDLER_SET: this vector has its own flags */
        jnz     1f
        movzbl  PROGRAM + 7, %eax         /* else the program's default handler */
1:      pushl   %eax
        testb   $0x02, %al                /* HANDLER_LOG: ISR/IRR/PPR as seen on entry */
        jz      2f
        call    \p\()log_interrupt
2:      movl    (%esp), %eax
        testb   $0x3C, %al                /* HANDLER_NMIS, on the handler's first run only */
        jz      6f
        cmpl    $1, COUNTS(,%ebx,4)
        jne     6f
        call    \p\()send_nmis
6:      popl    %eax
        testb   $0x01, %al                /* HANDLER_EOI: write 0 to EOI (SDM §10.8.5) */
        jz      3f
        movl    $0xB0, %ecx
        xorl    %eax, %eax
        xorl    %edx, %edx
        call    \p\()apic_write
3:      popal
        .if \m == 0
        addw    $2, %sp
        iret
        .else
        /* Return without IRET: KVM's instruction emulator implements IRET only in real mode
         * (arch/x86/kvm/emulate.c, em_iret), and a KVM that emulates unpaged protected mode
         * (kvm_pvm, docs/host.md) fails on it. Same CS and CPL 0, so POPF + RET is equivalent
         * (SDM vol. 2A IRET, "return to same privilege level"), but for one instruction of IF = 1
         * before the RET. The frame [vector, EIP, CS, EFLAGS] becomes [EFLAGS, EIP, ...]. */
        pushl   %eax
        movl    16(%esp), %eax            /* EFLAGS -> the vector's slot */
        movl    %eax, 4(%esp)
        movl    8(%esp), %eax             /* EIP -> the CS slot */
        movl    %eax, 12(%esp)
        popl    %eax
        popfl
        ret     $8
        .endif

/* send_nmis: AL = the handler's flags, EBX = vector. HANDLER_NMIS (bits 2-5) times an NMI IPI
 * to this CPU's own APIC ID (delivery mode NMI, level assert, no shorthand: program.SELF_NMI_ICR;
 * SDM §10.6.1), then, with HANDLER_LOG, the ICR read back as "@R" tsc reg(8) value(16), built in
 * the handler's buffer: the record marks that this run of the handler is still running after its
 * sends (kvm-unit-tests x86/apic.c test_pending_nmi sends from its NMI handler the same way) */
\p\()send_nmis:
        pushl   %eax
        movzbl  %al, %esi
        shrl    $2, %esi
        andl    $0x0F, %esi
1:      movl    VAR_CPU, %edx             /* destination: ICR bits 63:32 (x2APIC, §10.12.9) */
        .if \m == 1
        shll    $24, %edx                 /* or 63:56 (xAPIC, §10.6.1) */
        .endif
        movl    $0x4400, %eax
        movl    $0x300, %ecx
        call    \p\()apic_write
        decl    %esi
        jnz     1b
        popl    %eax
        testb   $0x02, %al
        jz      3f
        movl    $0x300, %ecx
        call    \p\()apic_read
        pushl   %edx
        pushl   %eax
        movl    $BUF_IRQ, %edi
        cmpl    $2, %ebx
        jne     2f
        movl    $BUF_NMI, %edi
2:      movb    $'R', %al
        call    \p\()head
        movl    $0x300, %eax
        call    \p\()hex32
        popl    %eax
        popl    %edx
        call    \p\()hex64
        call    \p\()emit
3:      ret

/* "@I" tsc vector(2) ppr(8) "/" ISR vectors (2 each) "/" IRR vectors (2 each): a list of set bits
 * keeps the line short, and every byte is an I/O exit on KVM */
\p\()log_interrupt:
        movl    $BUF_IRQ, %edi
        cmpl    $2, %ebx                  /* an NMI can interrupt a handler that is still */
        jne     1f                        /* writing BUF_IRQ (CLI does not hold NMIs off): */
        movl    $BUF_NMI, %edi            /* it builds its line elsewhere */
1:
        movb    $'I', %al
        call    \p\()head
        movb    %bl, %al
        call    \p\()hex8
        movl    $0xA0, %ecx
        call    \p\()apic_read
        call    \p\()hex32
        movl    $0x100, %esi              /* ISR0-7 (SDM §10.8.4) */
        call    \p\()vectors
        movl    $0x200, %esi              /* IRR0-7 */
        call    \p\()vectors
        movl    $0x180, %esi              /* TMR0-7: level-triggered vectors (§10.8.4) */
        call    \p\()vectors
        jmp     \p\()emit

/* vectors: "/" then, for the 8 registers at offsets ESI + 0x10 i, each set bit's vector */
\p\()vectors:
        movb    $'/', %al
        stosb
        pushl   %ebx
        xorl    %ebx, %ebx                /* register index i: bits 32i..32i+31 */
1:      movl    %ebx, %ecx
        shll    $4, %ecx
        addl    %esi, %ecx
        call    \p\()apic_read
2:      testl   %eax, %eax
        jz      3f
        bsfl    %eax, %ecx
        btrl    %ecx, %eax
        pushl   %eax
        movl    %ebx, %eax
        shll    $5, %eax
        addl    %ecx, %eax
        call    \p\()hex8
        popl    %eax
        jmp     2b
3:      incl    %ebx
        cmpl    $8, %ebx
        jne     1b
        popl    %ebx
        ret

\p\()fault:                               /* "@F" tsc vector(2), then stop */
        movl    $BUF_IRQ, %edi
        movb    $'F', %al
        call    \p\()head
        movb    %bl, %al
        call    \p\()hex8
        call    \p\()emit
        jmp     \p\()exit

/* the interpreter: ESI walks the steps (16 bytes: u32 op, u32 a, u64 b); EBX = a, EDX:EAX = b */
\p\()interp:
        /* several CPUs: CPU 0 starts the others with a start-up IPI to vector 0xF0, F000:0000,
         * which is `start` (SDM §8.4.4.1, §10.6.1). QEMU's application processors wait for one
         * from power-on; on KVM the backend made them run from the reset vector already, and a
         * SIPI to a CPU not waiting for one is ignored (§10.4.7.3) */
        cmpl    $1, PROGRAM + 12
        jbe     1f
        cmpl    $0, VAR_CPU
        jne     1f
        cmpl    $0, %fs:SHARED_SIPI
        jne     1f
        movl    $1, %fs:SHARED_SIPI
        movl    $0x300, %ecx
        movl    $SIPI_START, %eax
        xorl    %edx, %edx
        call    \p\()apic_write
1:      movl    $BUF_MAIN, %edi           /* "@S" tsc mode(2) */
        movb    $'S', %al
        call    \p\()head
        movb    $\m, %al
        call    \p\()hex8
        call    \p\()emit
        movl    $STEPS, %esi
\p\()next:
        cmpb    $0, VAR_MINE              /* the step just run was this CPU's turn: pass it on */
        je      \p\()fetch
        movb    $0, VAR_MINE
        movl    %esi, %eax
        subl    $STEPS, %eax
        shrl    $4, %eax
        movl    %eax, %fs:SHARED_NEXT
\p\()fetch:
        cmpl    $1, PROGRAM + 12          /* header: CPU count (0: a one-CPU program) */
        jbe     \p\()own
        movl    %esi, %eax                /* several CPUs: this step's index and CPU */
        subl    $STEPS, %eax
        shrl    $4, %eax
        movzbl  2(%esi), %ecx
        cmpl    VAR_CPU, %ecx
        je      2f
        cmpw    $OP_END, (%esi)           /* another CPU ends the run: this one idles */
        je      \p\()idle
        addl    $16, %esi                 /* another CPU's step */
        jmp     \p\()fetch
2:      cmpl    %eax, %fs:SHARED_NEXT     /* wait for this step's turn */
        ja      3f
        je      4f
        pause
        jmp     2b
3:      addl    $16, %esi                 /* already past: this CPU was restarted (INIT, SIPI) */
        jmp     \p\()fetch
4:      movb    $1, VAR_MINE
\p\()own:
        movzwl  (%esi), %ecx              /* op (bits 16-23: the step's CPU) */
        movl    4(%esi), %ebx
        movl    8(%esi), %eax
        movl    12(%esi), %edx
        addl    $16, %esi
        cmpl    $OP_WRITE, %ecx
        je      \p\()op_write
        cmpl    $OP_READ, %ecx
        je      \p\()op_read
        cmpl    $OP_STI, %ecx
        je      \p\()op_sti
        cmpl    $OP_CLI, %ecx
        je      \p\()op_cli
        cmpl    $OP_HLT, %ecx
        je      \p\()op_hlt
        cmpl    $OP_WAIT, %ecx
        je      \p\()op_wait
        cmpl    $OP_TSC_DEADLINE, %ecx
        je      \p\()op_tsc_deadline
        cmpl    $OP_BUGCHECK_IF_TIMEOUT, %ecx
        je      \p\()op_bugcheck
        cmpl    $OP_PAUSE, %ecx
        je      \p\()op_pause
        cmpl    $OP_OUT, %ecx
        je      \p\()op_out
        cmpl    $OP_IN, %ecx
        je      \p\()op_in
        cmpl    $OP_RDMSR, %ecx
        je      \p\()op_rdmsr
        cmpl    $OP_WRMSR, %ecx
        je      \p\()op_wrmsr
        cmpl    $OP_STI_HLT, %ecx
        je      \p\()op_sti_hlt
        cmpl    $OP_LINT1_PULSE, %ecx
        je      \p\()op_lint1_pulse
        .if \m == 1                        /* MMIO needs the flat data segment (program.py) */
        cmpl    $OP_MMIO_WRITE, %ecx
        je      \p\()op_mmio_write
        cmpl    $OP_MMIO_READ, %ecx
        je      \p\()op_mmio_read
        .endif
        jmp     \p\()op_end               /* OP_END, or an op this agent does not know */

\p\()op_write:
        movl    %ebx, %ecx
        cmpl    $0x300, %ecx
        jne     1f
        call    \p\()sipi_trampoline
1:      call    \p\()apic_write
        jmp     \p\()next

/* ICR value EAX a start-up IPI (delivery mode 110b)? A CPU taking it starts in real mode at
 * vector * 0x1000 (SDM §8.4.4.1, "VV000H"): put there a far jump to `start`, which runs the
 * CPU's remaining steps (`fetch` skips those already past). Only pages 0x8000-0xFFFF, which the
 * agent leaves free in CPU 0's 64 KiB; the others would land in some CPU's data. */
\p\()sipi_trampoline:
        pushl   %eax
        pushl   %ebx
        movl    %eax, %ebx
        shrl    $8, %ebx
        andl    $7, %ebx
        cmpl    $6, %ebx
        jne     1f
        movzbl  %al, %ebx
        shll    $12, %ebx
        cmpl    $0x8000, %ebx
        jb      1f
        cmpl    $0x10000, %ebx
        jae     1f
        movb    $0xEA, %fs:(%ebx)         /* JMP ptr16:16 */
        movw    $start, %fs:1(%ebx)
        movw    $ROM_SEGMENT, %fs:3(%ebx)
1:      popl    %ebx
        popl    %eax
        ret

\p\()op_read:                             /* "@R" tsc reg(8) value(16) */
        movl    %ebx, %ecx
        call    \p\()apic_read
        pushl   %edx
        pushl   %eax
        movl    $BUF_MAIN, %edi
        movb    $'R', %al
        call    \p\()head
        movl    %ebx, %eax
        call    \p\()hex32
        popl    %eax
        popl    %edx
        call    \p\()hex64
        call    \p\()emit
        jmp     \p\()next

\p\()op_sti:
        sti
        jmp     \p\()next

\p\()op_cli:
        cli
        jmp     \p\()next

\p\()op_hlt:
        hlt
        jmp     \p\()next

/* STI; HLT back to back: STI's interrupt shadow holds an interrupt already pending until after
 * the HLT, which it then wakes (SDM vol. 2B STI: "interrupts are recognized at the next
 * instruction boundary" after the one following STI) */
\p\()op_sti_hlt:
        sti
        hlt
        jmp     \p\()next

/* LINT1_PULSE: the platform pulses LINT1 while the program is here. The marker on COM1 tells
 * the host; the host pulses (QEMU: QMP inject-nmi, which goes through the LVT LINT1 entry) and
 * then answers with the ack byte, polled for in COM1's receiver for at most 1 << 32 TSC ticks with
 * IF as it is, so an NMI or interrupt the pulse raised is taken during this step. A port where no
 * UART answers reads 0xFF: its "data" is not the ack. No ack in time: "@L" tsc, and go on. */
\p\()op_lint1_pulse:
        movw    $COM1, %dx
        movb    $LINT1_MARKER, %al
        outb    %al, %dx
        rdtsc
        movl    %eax, %ebp
        leal    LINT1_WAIT_HIGH(%edx), %edi  /* deadline = TSC + (1 << 32), in EDI:EBP */
1:      movw    $COM1_LSR, %dx
        inb     %dx, %al
        testb   $1, %al
        jz      2f
        movw    $COM1, %dx
        inb     %dx, %al
        cmpb    $LINT1_ACK, %al
        je      \p\()next
2:      pause
        rdtsc
        cmpl    %edi, %edx
        jb      1b
        ja      3f
        cmpl    %ebp, %eax
        jb      1b
3:      movl    $BUF_MAIN, %edi
        movb    $'L', %al
        call    \p\()head
        call    \p\()emit
        jmp     \p\()next

/* RDMSR a: "@Q" tsc msr(8) value(16); a #GP instead is reported "@G" tsc 0D and the program goes
 * on (gp_caught). EFLAGS (IF) is saved under the ESP the handler returns to. */
\p\()op_rdmsr:
        pushfl
        movl    %esp, VAR_GP_ESP
        movb    $1, VAR_GP_ARMED
        movl    %ebx, %ecx
        rdmsr
        movb    $0, VAR_GP_ARMED
        popfl
        pushl   %edx
        pushl   %eax
        movl    $BUF_MAIN, %edi
        movb    $'Q', %al
        call    \p\()head
        movl    %ebx, %eax
        call    \p\()hex32
        popl    %eax
        popl    %edx
        call    \p\()hex64
        call    \p\()emit
        jmp     \p\()next

\p\()op_wrmsr:                           /* WRMSR a = EDX:EAX (b); a #GP as for RDMSR */
        pushfl
        movl    %esp, VAR_GP_ESP
        movb    $1, VAR_GP_ARMED
        movl    %ebx, %ecx
        wrmsr
        movb    $0, VAR_GP_ARMED
        popfl
        jmp     \p\()next

/* the #GP of an armed RDMSR/WRMSR: drop the exception frame and the handler's registers (ESI, the
 * step pointer, is still the interpreter's), restore the step's EFLAGS, log, go on */
\p\()gp_caught:
        movb    $0, VAR_GP_ARMED
        movl    VAR_GP_ESP, %esp
        popfl
        movl    $BUF_MAIN, %edi
        movb    $'G', %al
        call    \p\()head
        movb    $13, %al
        call    \p\()hex8
        call    \p\()emit
        jmp     \p\()next

/* WAIT: spin until count[vector] >= target or RDTSC passes the deadline (the shape of
 * hal!HalpWaitForPhase0ClockTick, docs/design.md §4); "@W" tsc vector(2) count(8) D|T */
\p\()op_wait:
        movl    %eax, %ebp                /* deadline = TSC + b, in EDI:EBP */
        movl    %edx, %edi
        rdtsc
        addl    %eax, %ebp
        adcl    %edx, %edi
        movl    %ebx, %ecx
        shrl    $8, %ecx                  /* target count */
        andl    $0xFF, %ebx               /* vector */
1:      cmpl    %ecx, COUNTS(,%ebx,4)
        jae     2f
        rdtsc
        cmpl    %edi, %edx
        ja      3f
        jb      4f
        cmpl    %ebp, %eax
        jae     3f
4:      pause
        jmp     1b
2:      movb    $0, VAR_TIMED_OUT
        movb    $'D', %cl
        jmp     5f
3:      movb    $1, VAR_TIMED_OUT
        movb    $'T', %cl
5:      movl    $BUF_MAIN, %edi
        movb    $'W', %al
        call    \p\()head
        movb    %bl, %al
        call    \p\()hex8
        movl    COUNTS(,%ebx,4), %eax
        call    \p\()hex32
        movb    %cl, %al
        stosb
        call    \p\()emit
        jmp     \p\()next

\p\()op_tsc_deadline:                     /* IA32_TSC_DEADLINE = TSC + b (SDM §10.5.4.1) */
        movl    %eax, %ebx
        movl    %edx, %ebp
        rdtsc
        addl    %ebx, %eax
        adcl    %ebp, %edx
        movl    $MSR_TSC_DEADLINE, %ecx
        wrmsr
        jmp     \p\()next

/* like KeBugCheckEx: "@B" tsc code(8) p0(8) p1(8); the program stops there ("@E" follows, as in
 * the model's stepper, so traces compare event by event) */
\p\()op_bugcheck:
        cmpb    $0, VAR_TIMED_OUT
        je      \p\()next
        pushl   %edx
        pushl   %eax
        movl    $BUF_MAIN, %edi
        movb    $'B', %al
        call    \p\()head
        movl    %ebx, %eax
        call    \p\()hex32
        popl    %eax
        call    \p\()hex32
        popl    %eax
        call    \p\()hex32
        call    \p\()emit
        jmp     \p\()op_end

\p\()op_pause:                            /* spin b TSC ticks with the current IF */
        movl    %eax, %ebp
        movl    %edx, %edi
        rdtsc
        addl    %eax, %ebp
        adcl    %edx, %edi
1:      pause
        rdtsc
        cmpl    %edi, %edx
        jb      1b
        ja      \p\()next
        cmpl    %ebp, %eax
        jb      1b
        jmp     \p\()next

\p\()op_out:                              /* OUT port a, byte b (the PIT, the 8259s) */
        movl    %ebx, %edx
        outb    %al, %dx
        jmp     \p\()next

\p\()op_in:                               /* IN port a: "@P" tsc port(4) value(2) */
        movl    %ebx, %edx
        inb     %dx, %al
        movzbl  %al, %eax
        pushl   %eax
        movl    $BUF_MAIN, %edi
        movb    $'P', %al
        call    \p\()head
        movl    %ebx, %edx                /* hex takes the digits from the top of EDX */
        shll    $16, %edx
        movl    $4, %ecx
        call    \p\()hex
        popl    %eax
        call    \p\()hex8
        call    \p\()emit
        jmp     \p\()next

        .if \m == 1
\p\()op_mmio_write:                       /* one aligned dword store: IOREGSEL, IOWIN (82093AA §3.1) */
        movl    %eax, %fs:(%ebx)
        jmp     \p\()next

\p\()op_mmio_read:                        /* one aligned dword load: "@M" tsc addr(8) value(8) */
        movl    %fs:(%ebx), %eax
        pushl   %eax
        movl    $BUF_MAIN, %edi
        movb    $'M', %al
        call    \p\()head
        movl    %ebx, %eax
        call    \p\()hex32
        popl    %eax
        call    \p\()hex32
        call    \p\()emit
        jmp     \p\()next
        .endif

/* idle: a CPU whose steps are all done spins with its IF as it is, so its handlers still run.
 * Once the END step has begun it says so in its SHARED_ACKS byte: an interrupt or NMI pending
 * for it (and that its IF lets in) is taken at an instruction boundary before that store, so its
 * record is written before END's (SDM vol. 3A §6.6: "at instruction boundaries"). */
\p\()idle:
        cmpl    $0, %fs:SHARED_END
        je      1f
        movl    VAR_CPU, %eax
        movb    $1, %fs:SHARED_ACKS(%eax)
1:      pause
        jmp     \p\()idle

\p\()op_end:                              /* "@E" tsc */
        cmpl    $1, PROGRAM + 12          /* several CPUs: first let the others finish taking */
        jbe     9f                        /* what is pending for them (idle above), for at */
        movl    $1, %fs:SHARED_END        /* most END_GRACE ticks: a CPU waiting for SIPI or */
        rdtsc                             /* halted with IF = 0 never counts itself */
        movl    %eax, %ebp
        movl    %edx, %edi
        addl    $END_GRACE, %ebp
        adcl    $0, %edi
1:      movl    PROGRAM + 12, %ecx        /* every other CPU k's SHARED_ACKS byte set? */
2:      decl    %ecx
        js      9f
        cmpl    VAR_CPU, %ecx
        je      2b
        cmpb    $0, %fs:SHARED_ACKS(%ecx)
        jne     2b
        pause
        rdtsc
        cmpl    %edi, %edx
        jb      1b
        ja      9f
        cmpl    %ebp, %eax
        jb      1b
9:
        movl    $BUF_MAIN, %edi
        movb    $'E', %al
        call    \p\()head
        call    \p\()emit
        jmp     \p\()exit

        .endm

        .code16
        AGENT r_, 0

r_bad_program:                            /* "@X": no valid program in the slot */
        movl    $BUF_MAIN, %edi
        movb    $'X', %al
        call    r_head
        call    r_emit
        jmp     r_exit

/* ---- batch mode: one boot of an emulator runs many programs, one per reset --------------- */
/* The host (apiclab/guest/agent/batch.py) loads a table at BATCH_TABLE in RAM: "APBT", u32 count,
 * u16 segment[count], the programs' binary forms at segment * 16 (at or above 0xC000). Without it
 * nothing changes: the program comes from the ROM's slot. With it, the case number lives in low RAM
 * (BATCH_STATE), which a reset leaves alone: each boot takes the next case, records "@N" tsc
 * index(8) so the host can cut the log per case, and points DS so that DS:PROGRAM_SLOT is that
 * program; `exit` then resets the machine instead of stopping it, until the last case. The first
 * boot runs no case but resets at once: QEMU's TCG was seen to time a case's first timer
 * differently in the cold boot than after a reset (batch.py), so every case starts alike.
 * Called from start with DS = CS, ES = 0; keeps ES, may change DS and EAX, EBX, EBP, EDI. */
batch_select:
        movw    $(BATCH_TABLE >> 4), %ax
        movw    %ax, %fs
        cmpl    $BATCH_TABLE_MAGIC, %fs:0
        je      0f
        cmpb    $0, %cs:relay_flag        /* relay mode: perhaps a batch for several CPUs */
        je      9f
        movw    $(BATCH_TABLE_SMP >> 4), %ax
        movw    %ax, %fs
        cmpl    $BATCH_TABLE_MAGIC, %fs:0
        jne     9f
0:
        cmpl    $BATCH_STATE_MAGIC, %es:BATCH_STATE
        je      1f
        movl    $BATCH_STATE_MAGIC, %es:BATCH_STATE   /* first boot of the batch */
        movl    $0, %es:BATCH_STATE + 4
        movl    %fs:4, %eax
        movl    %eax, %es:BATCH_STATE + 8
        jmp     8f                        /* the first case, too, starts from a reset */
1:      movl    %es:BATCH_STATE + 4, %ebx
        cmpl    %es:BATCH_STATE + 8, %ebx
        jae     8f                        /* no case left (only after a stray reset): stop */
        leal    1(%ebx), %eax             /* counted before it runs: a case that resets the */
        movl    %eax, %es:BATCH_STATE + 4 /* machine itself (a triple fault) is not rerun */
        cmpb    $0, %cs:relay_flag
        je      2f
        call    batch_clear_shared        /* RAM outlives the reset: start as from power-on */
2:      xorl    %eax, %eax
        movw    %ax, %ds
        movl    $BUF_MAIN, %edi           /* "@N" tsc index(8) */
        movb    $'N', %al
        call    r_head
        movl    %ebx, %eax
        call    r_hex32
        call    r_emit
        movw    %fs:8(,%ebx,2), %ax
        subw    $(PROGRAM_SLOT >> 4), %ax
        movw    %ax, %ds
9:      ret
8:      xorl    %eax, %eax                /* r_exit resets to case 0 on the first boot */
        movw    %ax, %ds
        movw    %ax, %fs                  /* (relay reaches SHARED_RELAY through FS) */
        movl    %eax, PROGRAM + 12        /* no program: relay has no other CPU to relay */
        jmp     r_exit

/* batch_clear_shared: a batch for several CPUs keeps RAM over the reset between two cases, but
 * the agent counts on what power-on gives: the shared step counter and END's, SIPI's and relay's
 * flags at zero, and each other CPU's relay buffer empty (INIT keeps it, so `start` cannot clear
 * it). ES = 0; keeps everything but GS. */
batch_clear_shared:
        pushl   %eax
        pushl   %ecx
        xorl    %eax, %eax
        movl    $SHARED_NEXT, %ecx
1:      movb    %al, %es:(%ecx)           /* SHARED_NEXT .. SHARED_ACKS + MAX_CPUS - 1 */
        incl    %ecx
        cmpl    $(SHARED_ACKS + MAX_CPUS), %ecx
        jb      1b
        movl    $1, %ecx
2:      movl    %ecx, %eax                /* CPU k's VAR_RELAY_LEN, k = 1 .. MAX_CPUS - 1 */
        shll    $12, %eax
        movw    %ax, %gs
        movl    $0, %gs:VAR_RELAY_LEN
        incl    %ecx
        cmpl    $MAX_CPUS, %ecx
        jb      2b
        popl    %ecx
        popl    %eax
        ret

/* batch_current: an AP started in a batch for several CPUs (relay mode, the table at
 * BATCH_TABLE_SMP): DS so that DS:PROGRAM_SLOT is the case CPU 0 runs now (BATCH_STATE counts it
 * before it runs); nothing otherwise. Called from start with DS = CS; may change DS, FS, GS, EAX,
 * EBX. */
batch_current:
        cmpb    $0, %cs:relay_flag
        je      9f
        movw    $(BATCH_TABLE_SMP >> 4), %ax
        movw    %ax, %fs
        cmpl    $BATCH_TABLE_MAGIC, %fs:0
        jne     9f
        xorw    %ax, %ax
        movw    %ax, %gs
        cmpl    $BATCH_STATE_MAGIC, %gs:BATCH_STATE
        jne     9f
        movl    %gs:BATCH_STATE + 4, %ebx
        decl    %ebx
        cmpl    %fs:4, %ebx
        jae     9f
        movw    %fs:8(,%ebx,2), %ax
        subw    $(PROGRAM_SLOT >> 4), %ax
        movw    %ax, %ds
9:      ret

        .code32
        AGENT p_, 1

shutdown:
        .asciz  "Shutdown"

        .code16
park:                                     /* a CPU beyond MAX_CPUS takes no part */
        cli
        hlt
        jmp     park
        .code32

/* ---- hex_pairs: byte value b -> its two hex digits, for hex (uppercase, as log.py reads) -- */
        .balign 2
hex_pairs:
        .set b, 0
        .rept 256
        /* a true comparison is -1 in GNU as: digits above 9 skip the 7 characters to 'A' */
        .byte   '0' + (b >> 4) - ((b >> 4) > 9) * 7, '0' + (b & 15) - ((b & 15) > 9) * 7
        .set b, b + 1
        .endr

/* ---- the real-mode IVT, in ROM, the IDTR's base in mode 0: vector v -> F000:stubs16 + 8v -- */
        .balign 4
ivt16:
        .set vector, 0
        .rept 256
        .word   stubs16 + 8 * vector, ROM_SEGMENT
        .set vector, vector + 1
        .endr

/* ---- per-vector entry stubs: push the vector, join the common handler ---------------------- */
        .code16
        .balign 8
stubs16:                                  /* stub v at stubs16 + 8v */
        .set vector, 0
        .rept 256
        .balign 8
        pushw   $vector
        jmp     r_common
        .set vector, vector + 1
        .endr

        .code32
        .balign 16
stubs32:                                  /* stub v at stubs32 + 16v */
        .set vector, 0
        .rept 256
        .balign 16
        pushl   $vector
        jmp     p_common
        .set vector, vector + 1
        .endr

/* ---- the program slot, the relay flag and the reset vector ----------------------------------- */
        .org    PROGRAM_SLOT, 0
        .globl  program_slot
program_slot:
        .fill   PROGRAM_SIZE, 1, 0

        .globl  relay_flag
relay_flag:                               /* 1: CPUs k > 0 log through RAM (image.py, Bochs) */
        .byte   0

        .code16
        .org    0xFFF0, 0
        .globl  reset_vector
reset_vector:                             /* F000:FFF0, SDM §9.1.4 */
        ljmpw   $ROM_SEGMENT, $start
        .org    0x10000, 0
