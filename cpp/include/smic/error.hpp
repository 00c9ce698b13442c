// Errors thrown by the smic core. User errors (bad arguments, corrupt data) are exceptions,
// never asserts, so they survive NDEBUG builds and reach Python as ValueError / DecodeError.
#pragma once
#include <stdexcept>
#include <string>

namespace smic {

/// An argument is out of its documented range (shape, value, size).
class InvalidArgument : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// Coded data is truncated, corrupted or inconsistent with the model used to decode it.
class DecodeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Throw InvalidArgument with `message` unless `condition` holds.
inline void require(bool condition, const std::string& message) {
  if (!condition) throw InvalidArgument(message);
}

}  // namespace smic
