// comm.h: the communication interface of data-parallel training: rank and size, allreduce-sum,
// broadcast, barrier, and the thread count a rank takes by default. Collectives built on it
// (agreed errors, state broadcast, bucketed allreduce) are in core/collectives.h. Two implementations:
//   * local: one process (rank 0 of 1); every collective is the identity. Always built.
//   * mpi:   MPI_COMM_WORLD (Open MPI, MPICH, ...); only in builds with MPI (meson -Dmpi=auto finds it,
//            LOWBIT_HAVE_MPI=1).
// The process-wide communicator comm() is the local one until init_comm() finds that an MPI
// launcher (mpirun / mpiexec / srun) started the process; a plain `lowbit train` never touches MPI.
//
// Contract of every collective: all ranks call it in the same order with the same count, and
// every rank receives the same bytes. allreduce_sum computes data[i] := sum over ranks of data[i];
// with MPI the summation order is the library's, fixed for a given (count, size), so a run is
// repeatable, but it is not the order a single process would use (differences of a few ulps).
// Calls come from the thread that called init_comm (MPI_THREAD_FUNNELED).
#pragma once
#include <cstdint>
#include <string>

namespace lowbit {

class Comm {
 public:
  virtual ~Comm() = default;
  virtual const char* backend() const = 0;  // "local" | "mpi"
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int local_size() const = 0;  // ranks on this node (share its cores)
  virtual void allreduce_sum(float* data, int64_t count) = 0;
  virtual void allreduce_sum(double* data, int64_t count) = 0;
  virtual void broadcast(void* data, int64_t bytes, int root) = 0;
  virtual void barrier() = 0;
  // Ends every rank of the job with exit_code (MPI_Abort). Only the CLI's top level calls it;
  // library code throws lowbit::Error instead.
  [[noreturn]] virtual void abort(int exit_code) = 0;
};

// True when this build has the MPI implementation.
bool comm_has_mpi();
// True when the environment says an MPI launcher started this process (OMPI_COMM_WORLD_SIZE,
// PMIX_RANK, PMI_RANK / PMI_SIZE, MPI_LOCALNRANKS, or LOWBIT_MPI=1 to force it).
bool launched_by_mpi();
// Starts MPI when built with it and launched_by_mpi(); otherwise keeps the local communicator.
// Throws lowbit::Error when LOWBIT_MPI=1 asks for MPI in a build without it. Call once, first
// thing in main. Returns comm().
Comm& init_comm(int* argc, char*** argv);
// Finalizes MPI if init_comm started it (collective; call once at the end of main).
void finalize_comm();
// The process-wide communicator.
Comm& comm();

// Threads per rank when the user asks for none (0): this process's usable cores (CPU affinity
// mask, or SLURM_CPUS_PER_TASK) shared evenly by the ranks of `comm` on this node, at least 1.
int default_threads_per_rank(const Comm& comm);
// `requested` when positive, else default_threads_per_rank(comm).
int threads_for(const Comm& comm, int requested);

}  // namespace lowbit
