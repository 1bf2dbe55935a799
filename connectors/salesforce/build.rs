//! Links the binary in the order of connectors/salesforce/link-order.txt
//! (see gluefleet-build).

fn main() {
    gluefleet_build::link_order();
}
