/// Which kernel modules go into the initramfs: initramfs-tools' `MODULES=most`
/// (`auto_add_modules` in hook-functions 0.142), its hidden dependencies, and
/// the few modules Kiln adds for virtual machines.
package enum ModuleCoverage {
    /// A directory under `/lib/modules/<version>` copied whole, minus names matching `excluding` (globs).
    package struct Directory: Sendable {
        package let path: String
        package let excluding: [String]
        init(_ path: String, excluding: [String] = []) { self.path = path; self.excluding = excluding }
    }

    package static let mostDirectories: [Directory] = [
        // base
        Directory("kernel/drivers/usb/host", excluding: ["hwa-hc.ko", "sl811_cs.ko", "sl811-hcd.ko", "u132-hcd.ko", "whci-hcd.ko"]),
        Directory("kernel/drivers/usb/c67x00"), Directory("kernel/drivers/usb/chipidea"), Directory("kernel/drivers/usb/dwc2"),
        Directory("kernel/drivers/usb/dwc3"), Directory("kernel/drivers/usb/isp1760"), Directory("kernel/drivers/usb/musb"),
        Directory("kernel/drivers/usb/renesas_usbhs"), Directory("kernel/drivers/usb/typec/tcpm"),
        Directory("kernel/drivers/input/keyboard"),
        Directory("kernel/drivers/hid", excluding: [
            "hid-*ff.ko", "hid-a4tech.ko", "hid-cypress.ko", "hid-dr.ko", "hid-elecom.ko", "hid-gyration.ko", "hid-icade.ko",
            "hid-kensington.ko", "hid-kye.ko", "hid-lcpower.ko", "hid-magicmouse.ko", "hid-ntrig.ko", "hid-petalynx.ko",
            "hid-picolcd.ko", "hid-pl.ko", "hid-ps3remote.ko", "hid-quanta.ko", "hid-roccat-ko*.ko", "hid-roccat-pyra.ko",
            "hid-saitek.ko", "hid-sensor-hub.ko", "hid-sony.ko", "hid-speedlink.ko", "hid-tivo.ko", "hid-twinhan.ko",
            "hid-uclogic.ko", "hid-wacom.ko", "hid-waltop.ko", "hid-wiimote.ko", "hid-zydacron.ko"]),
        Directory("kernel/drivers/bus"), Directory("kernel/drivers/clk"), Directory("kernel/drivers/gpio"),
        Directory("kernel/drivers/i2c/busses"), Directory("kernel/drivers/i2c/muxes"), Directory("kernel/drivers/mfd"),
        Directory("kernel/drivers/pci/controller"), Directory("kernel/drivers/phy"), Directory("kernel/drivers/pinctrl"),
        Directory("kernel/drivers/regulator"), Directory("kernel/drivers/reset"), Directory("kernel/drivers/spi"),
        Directory("kernel/drivers/usb/phy"), Directory("kernel/drivers/rtc"),
        // net
        Directory("kernel/drivers/net", excluding: [
            "appletalk", "arcnet", "bonding", "can", "cdc-phonet.ko", "cdc_mbim.ko", "cdc_subset.ko", "cx82310_eth.ko",
            "dummy.ko", "gl620a.ko", "hamradio", "hippi", "hso.ko", "huawei_cdc_ncm.ko", "ifb.ko", "ipheth.ko", "irda",
            "kalmia.ko", "lg-vl600.ko", "macvlan.ko", "macvtap.ko", "net1080.ko", "pcmcia", "plusb.ko", "qmi_wwan.ko",
            "sb1000.ko", "sierra_net.ko", "team", "tokenring", "tun.ko", "veth.ko", "wan", "wimax", "wireless",
            "xen-netback.ko", "zaurus.ko"]),
        // ide, scsi, ata, block, mmc, usb_storage
        Directory("kernel/drivers/ide"), Directory("kernel/drivers/scsi"), Directory("kernel/drivers/ufs"),
        Directory("kernel/drivers/block"), Directory("kernel/drivers/nvme"), Directory("kernel/drivers/ata"),
        Directory("kernel/drivers/mmc"), Directory("kernel/drivers/usb/storage"),
    ]

    package static let mostModules: [String] = [
        "btrfs", "ext2", "ext3", "ext4", "f2fs", "isofs", "jfs", "reiserfs", "udf", "xfs", "nfs", "nfsv2", "nfsv3", "nfsv4",
        "af_packet", "atkbd", "i8042", "psmouse", "virtio_pci", "virtio_mmio",
        "extcon-usb-gpio", "extcon-usbc-cros-ec", "axp20x_usb_power", "onboard_usb_hub", "onboard_usb_dev",
        "cros_ec_spi", "hyperv-keyboard",
        "nvmem-imx-ocotp",
        "mptfc", "mptsas", "mptscsih", "mptspi", "zfcp", "vmd",
        "firewire-ohci", "firewire-sbp2", "dasd_diag_mod", "dasd_eckd_mod", "dasd_fba_mod",
        "rockchipdrm", "pwm-cros-ec", "pwm_bl", "pwm-rockchip", "panel-simple", "analogix-anx6345", "pwm-sun4i", "sun4i-drm",
        "sun8i-mixer", "panel-edp", "pwm_imx27", "nwl-dsi", "ti-sn65dsi86", "imx-dcss", "mux-mmio", "mxsfb",
        "imx8mq-interconnect",
    ]

    /// Modules `MODULES=most` leaves out that a VM image commonly needs: the
    /// virtio console and entropy source, and FAT for an EFI system partition.
    package static let kilnModules: [String] = [
        "virtio_console", "virtio_rng", "virtio_balloon", "vfat", "nls_cp437", "nls_ascii", "nls_iso8859-1", "nls_utf8",
    ]

    /// hook-functions' `hidden_dep_add_modules`: modules another one needs without saying so.
    package static func hiddenDependencies(of module: String) -> [String] {
        switch module {
        case "libcrc32c", "btrfs": ["crc32c"]
        case "ubifs": ["deflate", "zlib", "lzo"]
        case "f2fs": ["crc32"]
        case "mlx4_core": ["mlx4_ib"]
        case "mlx5_core": ["mlx5_ib"]
        case "i8042": ["psmouse"]
        case "nvme": ["vmd"]
        case "spi_rockchip": ["pl330"]
        case "dw_mmc_rockchip": ["rockchip-io-domain", "io-domain"]
        default: []
        }
    }
}
