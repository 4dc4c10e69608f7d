/*
 * apiclab VMX probe: a bare-metal hypervisor ROM (64 KiB, Bochs `romimage`) that runs one tiny
 * guest per case with virtual-interrupt delivery and reports what the processor did to RVI, SVI
 * and the virtual-APIC page. It exists to check SDM vol. 3C (325384-059US) §29.2.2 on an
 * independent implementation: the delivered vector is RVI itself, even when its VIRR bit is clear.
 *
 * Flow
 *   reset vector (F000:FFF0, SDM §9.1.4) -> real mode -> 32-bit protected mode with flat segments
 *   -> 32-bit paging with one 4 MiB identity page (CR0.PG is a fixed-1 bit of VMX operation:
 *   IA32_VMX_CR0_FIXED0 = 0x80000021 on Bochs' corei7_skylake_x; a paged protected-mode guest
 *   needs neither "unrestricted guest" nor EPT, §26.3.1.1)
 *   -> IA32_FEATURE_CONTROL locked with VMX enabled, CR4.VMXE, VMXON (§23.7, §30.3 "VMXON")
 *   -> for each case: VMCLEAR, VMPTRLD, write the VMCS, VMLAUNCH; the guest exits with VMCALL;
 *      the host VMREADs the exit reason and the guest interrupt status and reads the virtual-APIC
 *      page, prints one line, and goes on with the next case.
 *
 * Controls (§24.6): pin "external-interrupt exiting" (required by virtual-interrupt delivery,
 * §26.2.1.1); primary "use TPR shadow", "use MSR bitmaps" (a zero bitmap, so WRMSR 0x80B is
 * virtualized instead of exiting), "activate secondary controls"; secondary "virtualize x2APIC
 * mode", "APIC-register virtualization", "virtual-interrupt delivery". The EOI-exit bitmap is zero.
 * Each control value is (wanted | allowed-0) & allowed-1 from the IA32_VMX_TRUE_* MSRs (§A.3).
 *
 * The guest (32-bit protected mode, paging on, CPL 0) executes STI and a short loop, writes its
 * x2APIC EOI MSR (0x80B) as often as the case says, loops again with interrupts enabled, then
 * VMCALL. Its IDT sends vectors >= 32 to a handler that records the vector and returns with IRET
 * *without* an EOI; an exception ends the run of the case with VMCALL.
 *
 * Output: text lines on port 0xE9 (Bochs port_e9_hack), decoded by apiclab/backends/bochs_vmx/
 * result.py:
 *   "@VMXCAP basic HHHHHHHH_LLLLLLLL pin P proc P proc2 P exit X entry E"  (controls in use)
 *   "@CASE id exit R n N v V1V2..V8 gis GGGG vtpr T vppr P isr I(64) irr R(64) exc E"
 *   "@FAIL what HHHHHHHH err EEEEEEEE"       an instruction failed (VMfail: err = VM-instr. error)
 *   "@END"
 * then "Shutdown" to port 0x8900 ends Bochs.
 */

        .set ROM_BASE,        0xF0000

        /* physical = linear (identity paging), all in low RAM */
        .set PAGE_DIR,        0x1000      /* 32-bit paging, one 4 MiB page (§4.3) */
        .set VMXON_REGION,    0x2000
        .set VMCS_REGION,     0x3000
        .set VAPIC_PAGE,      0x4000      /* the virtual-APIC page (§29.1) */
        .set MSR_BITMAP,      0x5000      /* all zero: no MSR access exits (§24.6.9) */
        .set GUEST_IDT,       0x6000      /* 256 interrupt gates */
        .set TSS,             0x6800
        .set VARS,            0x7000
        .set CUR_CASE,        VARS + 0x00 /* linear address of the running case's record */
        .set G_COUNT,         VARS + 0x04 /* guest: interrupts taken */
        .set G_EOIS,          VARS + 0x08 /* guest: EOIs to write after the first loop */
        .set G_EXC,           VARS + 0x0C /* guest: exception vector + 0x100, or 0 */
        .set G_VECTORS,       VARS + 0x10 /* guest: the first 8 vectors taken, one byte each */
        .set PTR_SCRATCH,     VARS + 0x20 /* 64-bit physical address operand of VMXON etc. */
        .set vmx_basic_lo,    VARS + 0x40 /* IA32_VMX_BASIC */
        .set vmx_basic_hi,    VARS + 0x44
        .set ctl_pin,         VARS + 0x48 /* the control values in use */
        .set ctl_proc,        VARS + 0x4C
        .set ctl_proc2,       VARS + 0x50
        .set ctl_exit,        VARS + 0x54
        .set ctl_entry,       VARS + 0x58
        .set GUEST_STACK,     0x20000
        .set HOST_STACK,      0x30000

        .set PORT_LOG,        0xE9
        .set PORT_BOCHS,      0x8900

        .set MSR_FEATURE_CONTROL, 0x3A
        .set MSR_VMX_BASIC,   0x480
        .set MSR_VMX_PROCBASED_CTLS2, 0x48B
        .set MSR_X2APIC_EOI,  0x80B

        /* VMCS field encodings (SDM Appendix B) */
        .set F_GUEST_ES_SEL,  0x0800
        .set F_GUEST_INTR_STATUS, 0x0810
        .set F_HOST_ES_SEL,   0x0C00
        .set F_MSR_BITMAP,    0x2004
        .set F_VAPIC_ADDR,    0x2012
        .set F_EOI_EXIT0,     0x201C
        .set F_LINK_PTR,      0x2800
        .set F_PIN,           0x4000
        .set F_PROC,          0x4002
        .set F_EXIT,          0x400C
        .set F_ENTRY,         0x4012
        .set F_PROC2,         0x401E
        .set F_INSTR_ERROR,   0x4400
        .set F_EXIT_REASON,   0x4402

        .text
        .code16
rom_start:
/* ---- real mode: A20, GDT, protected mode --------------------------------------------------- */
start16:
        cli
        cld
        inb     $0x92, %al                /* fast A20 gate: VMXON needs A20 enabled */
        orb     $2, %al
        andb    $0xFE, %al
        outb    %al, $0x92
        lgdtl   %cs:(gdt_descriptor - rom_start)
        movl    %cr0, %eax
        orl     $1, %eax
        movl    %eax, %cr0
        ljmpl   $0x08, $pm_entry          /* flat CS: ROM labels are linear addresses */

        .code32
pm_entry:
        movw    $0x10, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %ss
        movw    %ax, %fs
        movw    %ax, %gs
        movl    $HOST_STACK, %esp

        /* zero the low RAM the probe uses (0x1000-0x7FFF) */
        movl    $PAGE_DIR, %edi
        movl    $(0x8000 - PAGE_DIR) / 4, %ecx
        xorl    %eax, %eax
        rep stosl

        /* PDE 0: 4 MiB page at 0, present, writable, PS (§4.3, Table 4-4) */
        movl    $0x83, PAGE_DIR
        movl    $PAGE_DIR, %eax
        movl    %eax, %cr3
        movl    %cr4, %eax
        orl     $0x10, %eax               /* CR4.PSE */
        movl    %eax, %cr4
        movl    %cr0, %eax
        orl     $0x80000020, %eax         /* CR0.PG, CR0.NE (VMXON requires NE) */
        movl    %eax, %cr0
        jmp     1f
1:
        call    build_guest_idt
        call    vmx_on
        call    compute_controls

        movl    $cases, %esi
next_case:
        cmpb    $0, (%esi)
        je      all_done
        movl    %esi, CUR_CASE
        call    run_case                  /* returns only on failure; exits land at vm_exit */
        movl    CUR_CASE, %esi
        addl    $CASE_SIZE, %esi
        jmp     next_case

all_done:
        movl    $s_end, %esi
        call    puts
        movl    $s_shutdown, %esi
        movw    $PORT_BOCHS, %dx
1:      lodsb
        testb   %al, %al
        jz      2f
        outb    %al, %dx
        jmp     1b
2:      hlt
        jmp     2b

/* ---- VMX on ------------------------------------------------------------------------------- */
vmx_on:
        movl    $MSR_FEATURE_CONTROL, %ecx /* lock it with "VMX outside SMX" if still unlocked */
        rdmsr
        testl   $1, %eax
        jnz     1f
        orl     $5, %eax
        wrmsr
1:      movl    $MSR_VMX_BASIC, %ecx      /* revision id: bits 30:0 (§A.1) */
        rdmsr
        movl    %eax, vmx_basic_lo
        movl    %edx, vmx_basic_hi
        andl    $0x7FFFFFFF, %eax
        movl    %eax, VMXON_REGION
        movl    %eax, VMCS_REGION
        movl    %cr4, %eax
        orl     $0x2000, %eax             /* CR4.VMXE */
        movl    %eax, %cr4
        movl    $VMXON_REGION, PTR_SCRATCH
        movl    $0, PTR_SCRATCH + 4
        vmxon   PTR_SCRATCH
        movl    $s_vmxon, %ebx
        call    check_vmfail
        ret

/* check_vmfail: after a VMX instruction; CF (VMfailInvalid) or ZF (VMfailValid) -> "@FAIL" */
check_vmfail:
        jc      1f
        jz      1f
        ret
1:      movl    $s_fail, %esi
        call    puts
        movl    %ebx, %esi
        call    puts
        movl    $s_err, %esi
        call    puts
        movl    $F_INSTR_ERROR, %eax
        vmread  %eax, %eax                /* VM-instruction error (0 if no current VMCS) */
        jnc     2f
        movl    $0xFFFFFFFF, %eax
2:      call    hex32
        call    newline
        jmp     all_done

/* ---- control values from the capability MSRs (§A.3, §A.4) --------------------------------- */
/* adjust: ECX = capability MSR, EBX = wanted bits -> EAX = (wanted | allowed0) & allowed1 */
adjust:
        rdmsr
        orl     %ebx, %eax
        andl    %edx, %eax
        ret

compute_controls:
        xorl    %edi, %edi                /* EDI = 0x0C when the TRUE MSRs exist (bit 55) */
        testl   $0x00800000, vmx_basic_hi
        jz      1f
        movl    $0x0C, %edi
1:      movl    $0x481, %ecx              /* pin-based: external-interrupt exiting */
        addl    %edi, %ecx
        movl    $0x00000001, %ebx
        call    adjust
        movl    %eax, ctl_pin
        movl    $0x482, %ecx              /* TPR shadow, MSR bitmaps, secondary controls */
        addl    %edi, %ecx
        movl    $0x90200000, %ebx
        call    adjust
        movl    %eax, ctl_proc
        movl    $MSR_VMX_PROCBASED_CTLS2, %ecx /* virtualize x2APIC, APIC-register virt., VID */
        movl    $0x00000310, %ebx
        call    adjust
        movl    %eax, ctl_proc2
        movl    $0x483, %ecx              /* VM-exit: 32-bit host */
        addl    %edi, %ecx
        xorl    %ebx, %ebx
        call    adjust
        movl    %eax, ctl_exit
        movl    $0x484, %ecx              /* VM-entry: 32-bit guest */
        addl    %edi, %ecx
        xorl    %ebx, %ebx
        call    adjust
        movl    %eax, ctl_entry

        movl    $s_cap, %esi              /* "@VMXCAP ..." */
        call    puts
        movl    vmx_basic_hi, %eax
        call    hex32
        movb    $'_', %al
        outb    %al, $PORT_LOG
        movl    vmx_basic_lo, %eax
        call    hex32
        movl    $s_pin, %esi
        call    puts
        movl    ctl_pin, %eax
        call    hex32
        movl    $s_proc, %esi
        call    puts
        movl    ctl_proc, %eax
        call    hex32
        movl    $s_proc2, %esi
        call    puts
        movl    ctl_proc2, %eax
        call    hex32
        movl    $s_exitc, %esi
        call    puts
        movl    ctl_exit, %eax
        call    hex32
        movl    $s_entryc, %esi
        call    puts
        movl    ctl_entry, %eax
        call    hex32
        call    newline
        ret

/* ---- guest IDT: gate v -> gstubs + 16v, 32-bit interrupt gate, DPL 0 (§6.11) ------------- */
build_guest_idt:
        movl    $GUEST_IDT, %edi
        movl    $gstubs, %eax
        movl    $256, %ecx
1:      movw    %ax, (%edi)
        movw    $0x08, 2(%edi)
        movw    $0x8E00, 4(%edi)
        movl    %eax, %edx
        shrl    $16, %edx
        movw    %dx, 6(%edi)
        addl    $16, %eax
        addl    $8, %edi
        loop    1b
        ret

/* ---- one case ------------------------------------------------------------------------------ */
/* case record: id, rvi, svi, vtpr, virr vector (0 none), visr vector (0 none), eois, pad */
        .set CASE_SIZE, 8
run_case:
        /* the virtual-APIC page: zero, then VTPR, VIRR, VISR as the case says */
        movl    $VAPIC_PAGE, %edi
        movl    $1024, %ecx
        xorl    %eax, %eax
        rep stosl
        movzbl  3(%esi), %eax
        movl    %eax, VAPIC_PAGE + 0x80
        movzbl  4(%esi), %eax
        movl    $0x200, %ebx
        call    set_page_bit
        movzbl  5(%esi), %eax
        movl    $0x100, %ebx
        call    set_page_bit
        /* the guest's variables */
        movl    $0, G_COUNT
        movl    $0, G_EXC
        movl    $0, G_VECTORS
        movl    $0, G_VECTORS + 4
        movzbl  6(%esi), %eax
        movl    %eax, G_EOIS

        movl    $VMCS_REGION, PTR_SCRATCH
        movl    $0, PTR_SCRATCH + 4
        vmclear PTR_SCRATCH
        movl    $s_vmclear, %ebx
        call    check_vmfail
        vmptrld PTR_SCRATCH
        movl    $s_vmptrld, %ebx
        call    check_vmfail

        movl    $vmcs_table, %esi         /* constant fields */
1:      movl    (%esi), %eax
        cmpl    $0xFFFFFFFF, %eax
        je      2f
        movl    4(%esi), %edx
        call    vmw
        addl    $8, %esi
        jmp     1b
2:      movl    $F_PIN, %eax
        movl    ctl_pin, %edx
        call    vmw
        movl    $F_PROC, %eax
        movl    ctl_proc, %edx
        call    vmw
        movl    $F_PROC2, %eax
        movl    ctl_proc2, %edx
        call    vmw
        movl    $F_EXIT, %eax
        movl    ctl_exit, %edx
        call    vmw
        movl    $F_ENTRY, %eax
        movl    ctl_entry, %edx
        call    vmw
        movl    CUR_CASE, %esi            /* guest interrupt status = SVI << 8 | RVI (§24.4.2) */
        movzbl  2(%esi), %edx
        shll    $8, %edx
        movb    1(%esi), %dl
        movl    $F_GUEST_INTR_STATUS, %eax
        call    vmw
        /* host state that is only known now */
        movl    $0x6C00, %eax             /* host CR0 */
        movl    %cr0, %edx
        call    vmw
        movl    $0x6C02, %eax             /* host CR3 */
        movl    %cr3, %edx
        call    vmw
        movl    $0x6C04, %eax             /* host CR4 */
        movl    %cr4, %edx
        call    vmw
        movl    $0x6800, %eax             /* guest CR0 = host's: PE, NE, PG */
        movl    %cr0, %edx
        call    vmw
        movl    $0x6802, %eax             /* guest CR3 = the same identity map */
        movl    %cr3, %edx
        call    vmw
        movl    $0x6804, %eax             /* guest CR4: PSE, VMXE (a fixed-1 bit) */
        movl    %cr4, %edx
        call    vmw

        vmlaunch
        movl    $s_vmlaunch, %ebx
        call    check_vmfail
        ret

/* set_page_bit: EAX = vector (0 = none), EBX = page offset of the 256-bit register (0x100 ISR,
 * 0x200 IRR): 8 words of 32 bits, 16 bytes apart (§10.8.4) */
set_page_bit:
        testl   %eax, %eax
        jz      1f
        movl    %eax, %ecx
        shrl    $5, %ecx
        shll    $4, %ecx
        addl    %ebx, %ecx
        andl    $31, %eax
        btsl    %eax, VAPIC_PAGE(%ecx)
1:      ret

/* vmw: VMWRITE field EAX := EDX */
vmw:
        vmwrite %edx, %eax
        jc      1f
        jz      1f
        ret
1:      pushl   %eax
        movl    $s_fail, %esi
        call    puts
        movl    $s_vmwrite, %esi
        call    puts
        popl    %eax
        call    hex32
        movl    $s_err, %esi
        call    puts
        movl    $F_INSTR_ERROR, %eax
        vmread  %eax, %eax
        call    hex32
        call    newline
        jmp     all_done

/* ---- VM exit: the host resumes here with the host state of the VMCS ------------------------ */
vm_exit:
        movl    $s_case, %esi             /* "@CASE id" */
        call    puts
        movl    CUR_CASE, %esi
        movb    (%esi), %al
        call    hex8
        movl    $s_exit, %esi             /* " exit R": 18 = VMCALL (Appendix C) */
        call    puts
        movl    $F_EXIT_REASON, %eax
        vmread  %eax, %eax
        call    hex32
        movl    $s_n, %esi                /* " n N v V1..V8" */
        call    puts
        movl    G_COUNT, %eax
        call    hex8
        movl    $s_v, %esi
        call    puts
        movl    $G_VECTORS, %ebx
        movl    $8, %ecx
1:      movb    (%ebx), %al
        pushl   %ecx
        call    hex8
        popl    %ecx
        incl    %ebx
        loop    1b
        movl    $s_gis, %esi              /* " gis SVI:RVI" */
        call    puts
        movl    $F_GUEST_INTR_STATUS, %eax
        vmread  %eax, %eax
        call    hex16
        movl    $s_vtpr, %esi
        call    puts
        movl    VAPIC_PAGE + 0x80, %eax
        call    hex32
        movl    $s_vppr, %esi
        call    puts
        movl    VAPIC_PAGE + 0xA0, %eax
        call    hex32
        movl    $s_isr, %esi
        call    puts
        movl    $0x100, %ebx
        call    print_256
        movl    $s_irr, %esi
        call    puts
        movl    $0x200, %ebx
        call    print_256
        movl    $s_exc, %esi
        call    puts
        movl    G_EXC, %eax
        call    hex16
        call    newline
        movl    CUR_CASE, %esi
        addl    $CASE_SIZE, %esi
        jmp     next_case

/* print_256: the 256-bit register at VAPIC_PAGE + EBX, bits 255..0 as 64 hex digits */
print_256:
        addl    $0x70, %ebx
        movl    $8, %ecx
1:      movl    VAPIC_PAGE(%ebx), %eax
        pushl   %ecx
        call    hex32
        popl    %ecx
        subl    $0x10, %ebx
        loop    1b
        ret

/* ---- output to port 0xE9 ------------------------------------------------------------------- */
puts:                                     /* ESI = asciz */
1:      lodsb
        testb   %al, %al
        jz      2f
        outb    %al, $PORT_LOG
        jmp     1b
2:      ret

newline:
        movb    $'\n', %al
        outb    %al, $PORT_LOG
        ret

hex32:                                    /* EAX, 8 digits; ECX, EDX clobbered */
        movl    $8, %ecx
        jmp     hexn
hex16:
        shll    $16, %eax
        movl    $4, %ecx
        jmp     hexn
hex8:
        shll    $24, %eax
        movl    $2, %ecx
hexn:
        movl    %eax, %edx
1:      roll    $4, %edx
        movb    %dl, %al
        andb    $0x0F, %al
        addb    $'0', %al
        cmpb    $'9', %al
        jbe     2f
        addb    $'A' - '9' - 1, %al
2:      outb    %al, $PORT_LOG
        loop    1b
        ret

/* ---- the guest ----------------------------------------------------------------------------- */
guest_entry:
        sti                               /* delivery is possible after the STI shadow */
        movl    $1000, %ecx
1:      nop
        loop    1b
        movl    G_EOIS, %esi
2:      testl   %esi, %esi
        jz      3f
        movl    $MSR_X2APIC_EOI, %ecx     /* EOI virtualization (§29.1.4, §29.5) */
        xorl    %eax, %eax
        xorl    %edx, %edx
        wrmsr
        decl    %esi
        jmp     2b
3:      movl    $1000, %ecx
4:      nop
        loop    4b
        cli
        vmcall                            /* exit reason 18 */
5:      hlt
        jmp     5b

guest_common:                             /* [esp] = vector */
        pushl   %eax
        pushl   %ebx
        movl    8(%esp), %eax
        cmpl    $32, %eax
        jb      guest_exception
        movl    G_COUNT, %ebx
        cmpl    $8, %ebx
        jae     1f
        movb    %al, G_VECTORS(%ebx)
1:      incl    G_COUNT
        popl    %ebx
        popl    %eax
        addl    $4, %esp
        iret                              /* no EOI: the vector stays in service */
guest_exception:
        orl     $0x100, %eax
        movl    %eax, G_EXC
        vmcall
        jmp     guest_exception

        .balign 16
gstubs:                                   /* stub v at gstubs + 16v */
        .set vector, 0
        .rept 256
        .balign 16
        pushl   $vector
        jmp     guest_common
        .set vector, vector + 1
        .endr

/* ---- data ---------------------------------------------------------------------------------- */
        .balign 8
gdt:    .quad   0
        .quad   0x00CF9B000000FFFF        /* 0x08: flat 32-bit code, accessed */
        .quad   0x00CF93000000FFFF        /* 0x10: flat 32-bit data, accessed */
        .word   0x0067, TSS               /* 0x18: 32-bit TSS (busy), base TSS, limit 0x67 */
        .byte   0x00, 0x8B, 0x00, 0x00
gdt_end:
gdt_descriptor:
        .word   gdt_end - gdt - 1
        .long   gdt

/* VMCS fields that do not change between cases: (encoding, value), ended by 0xFFFFFFFF */
        .balign 4
vmcs_table:
        /* guest segments: flat code 0x08, flat data 0x10, TR 0x18, LDTR unusable (§26.3.1.2) */
        .long   0x0800, 0x10, 0x0802, 0x08, 0x0804, 0x10, 0x0806, 0x10, 0x0808, 0x10, 0x080A, 0x10
        .long   0x080C, 0, 0x080E, 0x18
        .long   0x4800, 0xFFFFFFFF, 0x4802, 0xFFFFFFFF, 0x4804, 0xFFFFFFFF, 0x4806, 0xFFFFFFFF
        .long   0x4808, 0xFFFFFFFF, 0x480A, 0xFFFFFFFF, 0x480C, 0, 0x480E, 0x67
        .long   0x4814, 0xC093, 0x4816, 0xC09B, 0x4818, 0xC093, 0x481A, 0xC093
        .long   0x481C, 0xC093, 0x481E, 0xC093, 0x4820, 0x10000, 0x4822, 0x8B
        .long   0x6806, 0, 0x6808, 0, 0x680A, 0, 0x680C, 0, 0x680E, 0, 0x6810, 0, 0x6812, 0
        .long   0x6814, TSS
        .long   0x4810, gdt_end - gdt - 1, 0x6816, gdt
        .long   0x4812, 0x7FF, 0x6818, GUEST_IDT
        .long   0x681A, 0x400, 0x2802, 0, 0x2803, 0    /* DR7, IA32_DEBUGCTL */
        .long   0x681C, GUEST_STACK, 0x681E, guest_entry, 0x6820, 0x2  /* RSP, RIP, RFLAGS (IF=0) */
        .long   0x6822, 0, 0x4824, 0, 0x4826, 0       /* pending debug, interruptibility, active */
        .long   0x482A, 0, 0x6824, 0, 0x6826, 0       /* SYSENTER */
        .long   F_LINK_PTR, 0xFFFFFFFF, F_LINK_PTR + 1, 0xFFFFFFFF
        /* controls */
        .long   0x4004, 0, 0x4006, 0, 0x4008, 0, 0x400A, 0   /* no exception exits, no CR3 targets */
        .long   0x400E, 0, 0x4010, 0, 0x4014, 0, 0x4016, 0   /* no MSR areas, no injection */
        .long   0x401C, 0                                    /* TPR threshold */
        .long   0x6000, 0, 0x6002, 0, 0x6004, 0, 0x6006, 0   /* CR0/CR4 masks and shadows */
        .long   F_MSR_BITMAP, MSR_BITMAP, F_MSR_BITMAP + 1, 0
        .long   F_VAPIC_ADDR, VAPIC_PAGE, F_VAPIC_ADDR + 1, 0
        .long   F_EOI_EXIT0, 0, F_EOI_EXIT0 + 1, 0, F_EOI_EXIT0 + 2, 0, F_EOI_EXIT0 + 3, 0
        .long   F_EOI_EXIT0 + 4, 0, F_EOI_EXIT0 + 5, 0, F_EOI_EXIT0 + 6, 0, F_EOI_EXIT0 + 7, 0
        /* host state (§26.2.2, §27.5) */
        .long   F_HOST_ES_SEL, 0x10, 0x0C02, 0x08, 0x0C04, 0x10, 0x0C06, 0x10, 0x0C08, 0x10
        .long   0x0C0A, 0x10, 0x0C0C, 0x18
        .long   0x6C06, 0, 0x6C08, 0, 0x6C0A, TSS, 0x6C0C, gdt, 0x6C0E, GUEST_IDT
        .long   0x4C00, 0, 0x6C10, 0, 0x6C12, 0
        .long   0x6C14, HOST_STACK, 0x6C16, vm_exit
        .long   0xFFFFFFFF

/* the cases: id, RVI, SVI, VTPR, VIRR vector, VISR vector, EOIs the guest writes, 0 */
cases:
        .byte   1, 0xE1, 0x00, 0x00, 0x00, 0x00, 0, 0   /* stale RVI, VIRR clear */
        .byte   2, 0x00, 0x00, 0x00, 0x00, 0x00, 0, 0   /* clean */
        .byte   3, 0xE1, 0x00, 0xF0, 0x00, 0x00, 0, 0   /* stale RVI under VTPR 0xF0 */
        .byte   4, 0xE1, 0x00, 0x00, 0x00, 0x00, 1, 0   /* stale RVI, then the guest EOIs */
        .byte   5, 0xE1, 0x00, 0x00, 0xD1, 0x00, 0, 0   /* stale RVI over a pending clock 0xD1 */
        .byte   6, 0xE1, 0x00, 0x00, 0xD1, 0x00, 1, 0   /* the same, then one EOI */
        .byte   7, 0xD1, 0x00, 0x00, 0xD1, 0xE1, 1, 0   /* VISR has E1 but SVI = 0; one EOI */
        .byte   8, 0x00, 0x00, 0x00, 0xD1, 0x00, 0, 0   /* VIRR has D1 but RVI = 0 */
        .byte   0

s_cap:      .asciz "@VMXCAP basic "
s_pin:      .asciz " pin "
s_proc:     .asciz " proc "
s_proc2:    .asciz " proc2 "
s_exitc:    .asciz " exit "
s_entryc:   .asciz " entry "
s_case:     .asciz "@CASE "
s_exit:     .asciz " exit "
s_n:        .asciz " n "
s_v:        .asciz " v "
s_gis:      .asciz " gis "
s_vtpr:     .asciz " vtpr "
s_vppr:     .asciz " vppr "
s_isr:      .asciz " isr "
s_irr:      .asciz " irr "
s_exc:      .asciz " exc "
s_fail:     .asciz "@FAIL "
s_err:      .asciz " err "
s_vmxon:    .asciz "vmxon 00000000"
s_vmclear:  .asciz "vmclear 00000000"
s_vmptrld:  .asciz "vmptrld 00000000"
s_vmlaunch: .asciz "vmlaunch 00000000"
s_vmwrite:  .asciz "vmwrite "
s_end:      .asciz "@END\n"
s_shutdown: .asciz "Shutdown"

/* ---- the reset vector ---------------------------------------------------------------------- */
        .code16
        .org    0xFFF0, 0
        .globl  reset_vector
reset_vector:                             /* F000:FFF0, SDM §9.1.4 */
        ljmpw   $0xF000, $(start16 - rom_start)
        .org    0x10000, 0
