;; The write_hello family: writes six bytes to a file in the directory granted at fd 3 (as
;; `--dir HOST::/work`), reads them back, and prints what it did. write_hello.wat writes
;; "hello\n" to out.txt; write_hello_upper.wat differs from it only in the bytes ("HELLO\n"),
;; write_hello_elsewhere.wat only in the file's name (new.txt). The tape tests replay the
;; variants against a tape of write_hello.wat.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_pread" (func $fd_pread (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  ;; 0: the fd opened; 8: an iovec; 16: a count; 64..: bytes read back.
  (data (i32.const 1024) "new.txt")
  (data (i32.const 1040) "hello\n")
  (data (i32.const 1056) "wrote and read back 6 bytes\n")
  (data (i32.const 1088) "failed\n")

  (func $print (param $p i32) (param $n i32)
    (i32.store (i32.const 8) (local.get $p))
    (i32.store (i32.const 12) (local.get $n))
    (drop (call $fd_write (i32.const 1) (i32.const 8) (i32.const 1) (i32.const 16))))
  (func $check (param $errno i32)
    (if (local.get $errno)
      (then
        (call $print (i32.const 1088) (i32.const 7))
        (call $proc_exit (i32.const 1)))))

  (func (export "_start")
    ;; O_CREAT|O_TRUNC, read and write.
    (call $check (call $path_open (i32.const 3) (i32.const 1) (i32.const 1024) (i32.const 7)
      (i32.const 9) (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 0)))
    (i32.store (i32.const 8) (i32.const 1040))
    (i32.store (i32.const 12) (i32.const 6))
    (call $check (call $fd_write (i32.load (i32.const 0)) (i32.const 8) (i32.const 1) (i32.const 16)))
    (i32.store (i32.const 8) (i32.const 64))
    (i32.store (i32.const 12) (i32.const 6))
    (call $check (call $fd_pread (i32.load (i32.const 0)) (i32.const 8) (i32.const 1) (i64.const 0) (i32.const 16)))
    (call $check (call $fd_close (i32.load (i32.const 0))))
    (call $print (i32.const 1056) (i32.const 28)))
)
