;; Passes a result pointer that runs past the end of memory to fd_filestat_get on the
;; directory granted at fd 3: wasmtime-wasi traps the guest (exit 134), after one line of
;; output. A replay must trap the same way.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_filestat_get" (func $fd_filestat_get (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; ---- printing helpers (the same in every module of this folder that uses them) ----
  ;; Memory: 0 iovec and 8 nwritten of $write; 16 $putc's byte; 20..48 $dec's digits;
  ;; 64..256 out-values; 256..512 iovecs; 512..1024 data buffers; 1024..2048 the helpers'
  ;; labels; 2048..8192 the module's strings (32-byte slots, NUL-terminated);
  ;; 8192.. big buffers.
  (data (i32.const 1024) " errno=\00")
  (data (i32.const 1056) " fd=\00")
  (data (i32.const 1088) " size=\00")
  (data (i32.const 1120) " n=\00")
  (data (i32.const 1152) " offset=\00")
  (data (i32.const 1184) " dev=\00")
  (data (i32.const 1216) " ino=\00")
  (data (i32.const 1248) " filetype=\00")
  (data (i32.const 1280) " nlink=\00")
  (data (i32.const 1312) " atim=\00")
  (data (i32.const 1344) " mtim=\00")
  (data (i32.const 1376) " ctim=\00")
  (data (i32.const 1408) " flags=\00")
  (data (i32.const 1440) " rights_base=\00")
  (data (i32.const 1472) " rights_inheriting=\00")
  (data (i32.const 1504) " bytes=\00")
  (data (i32.const 1536) " text=\00")
  (data (i32.const 1568) "0123456789abcdef")

  ;; Writes mem[p..p+n] to stdout.
  (func $write (param $p i32) (param $n i32)
    (i32.store (i32.const 0) (local.get $p))
    (i32.store (i32.const 4) (local.get $n))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func $strlen (param $p i32) (result i32)
    (local $n i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $n)))))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $next)))
    (local.get $n))
  ;; Prints the NUL-terminated string at p.
  (func $puts (param $p i32)
    (call $write (local.get $p) (call $strlen (local.get $p))))
  (func $putc (param $c i32)
    (i32.store8 (i32.const 16) (local.get $c))
    (call $write (i32.const 16) (i32.const 1)))
  (func $nl (call $putc (i32.const 10)))
  ;; Prints v as an unsigned decimal.
  (func $dec (param $v i64)
    (local $p i32)
    (local.set $p (i32.const 48))
    (loop $digit
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i64.store8 (local.get $p)
        (i64.add (i64.const 48) (i64.rem_u (local.get $v) (i64.const 10))))
      (local.set $v (i64.div_u (local.get $v) (i64.const 10)))
      (br_if $digit (i64.ne (local.get $v) (i64.const 0))))
    (call $write (local.get $p) (i32.sub (i32.const 48) (local.get $p))))
  ;; Prints v as 0x and 16 hex digits.
  (func $hex (param $v i64)
    (local $i i32)
    (call $putc (i32.const 48))
    (call $putc (i32.const 120))
    (local.set $i (i32.const 60))
    (loop $digit
      (call $putc (i32.load8_u (i32.add (i32.const 1568)
        (i32.wrap_i64 (i64.and (i64.shr_u (local.get $v) (i64.extend_i32_u (local.get $i)))
                               (i64.const 15))))))
      (local.set $i (i32.sub (local.get $i) (i32.const 4)))
      (br_if $digit (i32.ge_s (local.get $i) (i32.const 0)))))
  ;; Prints mem[p..p+n] as two hex digits a byte.
  (func $hexbytes (param $p i32) (param $n i32)
    (local $b i32)
    (block $done
      (loop $byte
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $b (i32.load8_u (local.get $p)))
        (call $putc (i32.load8_u (i32.add (i32.const 1568) (i32.shr_u (local.get $b) (i32.const 4)))))
        (call $putc (i32.load8_u (i32.add (i32.const 1568) (i32.and (local.get $b) (i32.const 15)))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $byte))))
  ;; " LABEL=" then v in decimal.
  (func $field (param $label i32) (param $v i64)
    (call $puts (local.get $label))
    (call $dec (local.get $v)))
  ;; " LABEL=" then v in hex.
  (func $hexfield (param $label i32) (param $v i64)
    (call $puts (local.get $label))
    (call $hex (local.get $v)))
  ;; Starts a line: "NAME errno=E".
  (func $begin (param $name i32) (param $errno i32)
    (call $puts (local.get $name))
    (call $field (i32.const 1024) (i64.extend_i32_u (local.get $errno))))
  ;; A whole line: "NAME errno=E".
  (func $line (param $name i32) (param $errno i32)
    (call $begin (local.get $name) (local.get $errno))
    (call $nl))
  ;; " bytes=HEX" of mem[p..p+n].
  (func $bytes (param $p i32) (param $n i32)
    (call $puts (i32.const 1504))
    (call $hexbytes (local.get $p) (local.get $n)))
  ;; " text=" then mem[p..p+n] as is, between quotes.
  (func $text (param $p i32) (param $n i32)
    (call $puts (i32.const 1536))
    (call $putc (i32.const 34))
    (call $write (local.get $p) (local.get $n))
    (call $putc (i32.const 34)))
  ;; The fields of the filestat at p.
  (func $filestat (param $p i32)
    (call $field (i32.const 1184) (i64.load (local.get $p)))
    (call $field (i32.const 1216) (i64.load offset=8 (local.get $p)))
    (call $field (i32.const 1248) (i64.load8_u offset=16 (local.get $p)))
    (call $field (i32.const 1280) (i64.load offset=24 (local.get $p)))
    (call $field (i32.const 1088) (i64.load offset=32 (local.get $p)))
    (call $field (i32.const 1312) (i64.load offset=40 (local.get $p)))
    (call $field (i32.const 1344) (i64.load offset=48 (local.get $p)))
    (call $field (i32.const 1376) (i64.load offset=56 (local.get $p))))
  ;; The fields of the fdstat at p.
  (func $fdstat (param $p i32)
    (call $field (i32.const 1248) (i64.load8_u (local.get $p)))
    (call $field (i32.const 1408) (i64.load16_u offset=2 (local.get $p)))
    (call $hexfield (i32.const 1440) (i64.load offset=8 (local.get $p)))
    (call $hexfield (i32.const 1472) (i64.load offset=16 (local.get $p))))
  ;; Sets the iovec at 256 to mem[p..p+n] (for the calls that take one).
  (func $iov (param $p i32) (param $n i32)
    (i32.store (i32.const 256) (local.get $p))
    (i32.store (i32.const 260) (local.get $n)))
  ;; ---- end of the helpers ----

  (data (i32.const 2048) "fd_filestat_get fd=3 in bounds\00")
  (data (i32.const 2080) "fd_filestat_get fd=3 out of bounds\00")
  (data (i32.const 2144) "not reached\00")

  (func (export "_start")
    (call $begin (i32.const 2048) (call $fd_filestat_get (i32.const 3) (i32.const 128)))
    (call $field (i32.const 1248) (i64.load8_u (i32.const 144)))
    (call $nl)
    ;; A 64-byte filestat at 65528 ends 56 bytes past the end of the one page.
    (call $line (i32.const 2080) (call $fd_filestat_get (i32.const 3) (i32.const 65528)))
    (call $puts (i32.const 2144))
    (call $nl))
)
