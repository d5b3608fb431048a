//! Raw imports of the devstash host module (see `devstash_protocol` for their contract).

#[link(wasm_import_module = "devstash")]
unsafe extern "C" {
    pub fn site_register(desc_ptr: *const u8, desc_len: usize) -> i32;
    pub fn stash_get(
        site: i32,
        args_ptr: *const u8,
        args_len: usize,
        flags: i32,
        out_ptr: *mut u64,
    ) -> i32;
    pub fn stash_take(dst_ptr: *mut u8, dst_len: usize) -> i32;
    pub fn stash_read(offset: u64, dst_ptr: *mut u8, dst_len: usize) -> i32;
    pub fn stash_put(
        ticket: i64,
        val_ptr: *const u8,
        val_len: usize,
        preview_ptr: *const u8,
        preview_len: usize,
    ) -> i32;
    pub fn stash_forget(ticket: i64) -> i32;
    pub fn stash_begin(ticket: i64) -> i32;
    pub fn stash_end(ticket: i64) -> i32;
    pub fn secret_hash(ptr: *const u8, len: usize, out_ptr: *mut u8) -> i32;
    pub fn log(level: i32, msg_ptr: *const u8, msg_len: usize) -> i32;
    pub fn http_request(req_ptr: *const u8, req_len: usize, out_ptr: *mut u64) -> i32;
}
