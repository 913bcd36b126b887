// detail/escape.hpp: the one escaping helper behind escape_text()/quote_value() (config)
// and the httplib adapter's escape_log(), which used to be two copies. Both rule sets,
// and max_bytes in the log rules, which only the helper exposes.
#include "webexec/detail/escape.hpp"

#include <cstdint>
#include <string>

#include <gtest/gtest.h>

#include "webexec/config.hpp"

namespace {

using webexec::detail::Escape;
using webexec::detail::escape_into;

std::string escaped(std::string_view text, Escape rules, std::size_t max_bytes = SIZE_MAX) {
  std::string out;
  escape_into(out, text, max_bytes, rules);
  return out;
}

TEST(EscapeTest, TextRulesAreEscapeText) {
  for (const std::string text : {"caf\xc3\xa9 \xe2\x98\x95", "a\tb\r\n\\'\x7f\x01", "\xc0\xaf\xff",
                                 "\xe2\x80\xae\xc2\x85", "\"q\""}) {
    EXPECT_EQ(escaped(text, Escape::text), webexec::escape_text(text, SIZE_MAX)) << text;
  }
}

TEST(EscapeTest, LogRulesKeepOnlyPrintableAscii) {
  EXPECT_EQ(escaped("plain 'text' 123", Escape::log), "plain 'text' 123");
  EXPECT_EQ(escaped("a\nb\rc\td\\", Escape::log), "a\\nb\\rc\\td\\\\");
  EXPECT_EQ(escaped(std::string("\0\x1b\x7f\"", 4), Escape::log), "\\x00\\x1b\\x7f\\x22");
  // Valid UTF-8 and bidi controls too: every byte >= 0x80 is written as \xNN.
  EXPECT_EQ(escaped("\xc3\xa9\xe2\x80\xae\xff", Escape::log), "\\xc3\\xa9\\xe2\\x80\\xae\\xff");
}

TEST(EscapeTest, StopsAtMaxBytesAndSaysSo) {
  std::string out;
  EXPECT_FALSE(escape_into(out, "ab\ncd", 3, Escape::log));
  EXPECT_EQ(out, "ab\\n");
  out.clear();
  EXPECT_TRUE(escape_into(out, "ab\ncd", 5, Escape::log));
  EXPECT_EQ(out, "ab\\ncd");
  out.clear();
  // The text rules never cut a character.
  EXPECT_FALSE(escape_into(out, "ab\xe2\x98\x95", 4, Escape::text));
  EXPECT_EQ(out, "ab");
}

}  // namespace
