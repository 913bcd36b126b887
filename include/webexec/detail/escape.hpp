/// Escaping untrusted text for one line of an error or log message (not
/// API): the one implementation behind `escape_text()` / `quote_value()`
/// (config.hpp) and the httplib adapter's `escape_log()`. Pure functions,
/// safe on any thread.
///
/// Example:
///
///     std::string line = "peer ";
///     detail::escape_into(line, req.remote_addr, SIZE_MAX, detail::Escape::log);
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "webexec/detail/export.hpp"

namespace webexec::detail {

/// What escape_into() keeps and how it writes the rest.
enum class Escape {
  /// escape_text()'s rules: valid UTF-8 is kept, except that `\` becomes
  /// `\\`, `'` becomes `\'`, `\n` `\r` `\t` stay readable, other C0 bytes and
  /// DEL become `\xNN`, C1 controls and the bidi/line-separator code points
  /// `\uNNNN`; a byte that is not part of valid UTF-8 becomes `\xNN`.
  text,
  /// Access-log rules: only printable ASCII is kept; `\` becomes `\\`, `\n`
  /// `\r` `\t` stay readable, and every other byte (controls, DEL, `"`, and
  /// each byte >= 0x80, UTF-8 or not) becomes `\xNN`, so a field can sit in
  /// double quotes and a line is plain ASCII.
  log,
};

/// Appends `text` to `out`, escaped by `rules`. At most `max_bytes` bytes of
/// `text` are taken, never cutting a character: returns false if it stopped
/// early because of `max_bytes`, true if all of `text` was written.
/// Throws: `std::bad_alloc` only.
WEBEXEC_API bool escape_into(std::string& out, std::string_view text, std::size_t max_bytes,
                             Escape rules);

}  // namespace webexec::detail
