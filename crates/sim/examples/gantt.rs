//! Gantt chart of the demo system, all layers on the GPU, then a mixed GPU/CPU placement:
//! `cargo run -p lalarand-sim --example gantt -- OUT_DIR`.

use lalarand_model::{examples, Allocation, ExecutionPlan, Mode};
use lalarand_sim::{simulate, write_gantt, GanttLabels, SimConfig};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| ".".into()));
    let system = examples::demo_system();
    let labels = GanttLabels::from_system(&system);
    let gpu = Allocation::uniform(&system, Mode::Gpu)?;
    let mut mixed = gpu.clone();
    // The lowest-priority task's layers to the CPU (int8): relieves the GPU.
    let last = system.by_priority().pop().expect("tasks");
    for p in &mut mixed.tasks[last] {
        p.resource = 1;
        p.mode = Mode::CpuInt8;
    }
    for (name, alloc) in [("demo-gpu.svg", gpu), ("demo-mixed.svg", mixed)] {
        let plan = ExecutionPlan::new(&system, &alloc)?;
        let run = simulate(&plan, &SimConfig::default())?;
        let path = out.join(name);
        write_gantt(&run, &labels, &path, None)?;
        println!("{}: {} misses", path.display(), run.misses());
        let zoom = out.join(name.replace(".svg", "-12ms.svg"));
        write_gantt(&run, &labels, &zoom, Some((0, lalarand_model::ms_to_time(12.0))))?;
    }
    Ok(())
}
