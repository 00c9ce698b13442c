// The JSON of HEAD, DHDR and IDS_ sections (internal). Writing reproduces Python's
// json.dumps byte for byte (", " and ": " separators, ASCII-only with \uXXXX escapes, floats
// as repr()), so files made here equal those of earlier Python writers. Reading accepts what
// json.loads accepts for these documents (NaN / Infinity included), with a depth limit.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace smic::json {

/// A parsed JSON value. Strings are UTF-8 (lone surrogates, from file names Python decoded
/// with surrogateescape, are kept as 3-byte sequences, as Python's "surrogatepass" does).
struct Value {
  enum class Kind { kNull, kBool, kInt, kFloat, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  bool boolean = false;
  int64_t integer = 0;  // kInt (integers beyond int64 are refused)
  double number = 0;    // kFloat
  std::string text;     // kString
  std::vector<Value> items;                            // kArray
  std::vector<std::pair<std::string, Value>> members;  // kObject, in file order

  bool is_null() const { return kind == Kind::kNull; }
  /// The member `key` (the last one, as Python keeps), or nullptr.
  const Value* find(const std::string& key) const;
  /// int or float as a double (json.loads gives int or float; the readers accept both).
  bool is_number() const { return kind == Kind::kInt || kind == Kind::kFloat; }
  double as_double() const { return kind == Kind::kInt ? static_cast<double>(integer) : number; }
};

/// Parse a document; throws std::invalid_argument with a position on any error.
Value parse(const std::string& text);

/// Builds json.dumps output incrementally.
class Writer {
 public:
  Writer& null();
  Writer& boolean(bool v);
  Writer& integer(int64_t v);
  Writer& number(double v);  ///< Python's float repr (NaN, Infinity, -Infinity as json.dumps)
  Writer& string(const std::string& utf8);
  Writer& begin_object();
  Writer& key(const std::string& k);  ///< callers give keys in the order json.dumps would
  Writer& end_object();
  Writer& begin_array();
  Writer& end_array();
  const std::string& str() const { return out_; }

 private:
  void separate();
  std::string out_;
  std::vector<bool> first_;  // per open container: no element yet
  bool after_key_ = false;
};

/// Python's repr() of a float.
std::string python_float_repr(double v);

}  // namespace smic::json
