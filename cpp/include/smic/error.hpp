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

/// A .smic / .smicd file or buffer is truncated, corrupted, of another kind or of a newer
/// format version. Readers throw it before allocating anything a damaged header asks for.
class FormatError : public DecodeError {
 public:
  using DecodeError::DecodeError;
};

/// A collection refers to a shared dictionary that was not given, or another one was given.
class DictionaryMismatchError : public FormatError {
 public:
  using FormatError::FormatError;
};

/// A file could not be read, created, written or renamed (the message names it and says why).
class IoError : public std::runtime_error {
 public:
  explicit IoError(const std::string& message, int error_number = 0)
      : std::runtime_error(message), error_number_(error_number) {}
  /// The errno of the failed call (0 if none applies).
  int error_number() const { return error_number_; }

 private:
  int error_number_;
};

/// Throw InvalidArgument with `message` unless `condition` holds.
inline void require(bool condition, const std::string& message) {
  if (!condition) throw InvalidArgument(message);
}
/// The same for a literal message: nothing is built unless the check fails, so a check in a
/// per-item or per-symbol loop costs one branch (the std::string overload allocates a string on
/// every call, which cost a third of the transform layer's coding time).
inline void require(bool condition, const char* message) {
  if (!condition) throw InvalidArgument(message);
}

}  // namespace smic
