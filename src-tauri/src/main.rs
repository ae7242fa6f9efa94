fn main() { deskmate_app::run() }
