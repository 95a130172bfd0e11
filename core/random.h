// random.h: Generator, lowbit's seedable random number source (xoshiro256**).
// Its whole state is four 64-bit words, so checkpoints save and restore it exactly; the same
// seed gives the same stream on every machine and build (no std:: distributions, whose
// output differs between standard libraries).
// There is no process-wide generator: whatever draws (a layer's initialisation, a Dropout's
// masks, a test's inputs) is handed a Generator& or owns one, so two models built in one process
// never disturb each other's streams and a checkpoint can name every stream it restores.
#pragma once
#include <array>
#include <cstdint>

namespace lowbit {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) { manual_seed(seed); }
  void manual_seed(uint64_t seed);
  uint64_t next_u64();
  float uniform();                    // [0, 1)
  float normal();                     // N(0, 1), Box-Muller
  uint64_t below(uint64_t bound);     // uniform integer in [0, bound)
  std::array<uint64_t, 4> state() const { return s_; }
  void set_state(const std::array<uint64_t, 4>& s) { s_ = s; }

 private:
  std::array<uint64_t, 4> s_{};
};

}  // namespace lowbit
