import Foundation
import StageOptions

/// `org.osbuild.ovf`: writes an OVF 1.x descriptor (`NAME.ovf`) and its
/// manifest (`NAME.mf`, SHA256 lines) next to a streamOptimized VMDK in the
/// pipeline's tree, describing a small VM (2 vCPUs, 2 GiB, LSI Logic SCSI
/// disk, one E1000 NIC on "VM Network") that VMware and VirtualBox import.
package struct OVF: Stage {
    package typealias Options = OVFOptions
    package typealias VMware = OVFOptions.VMware
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.assembly

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        let name = options.vmdk
        guard name.hasSuffix(".vmdk"), !name.contains("/"), name.count > 5 else {
            throw StageError.invalidOptions(
                reason: "\(Self.type): options.vmdk: \"\(name)\" must be a file name ending in .vmdk in the root of the tree")
        }
        let vmdk = try context.outputFile(name)
        guard FileManager.default.fileExists(atPath: vmdk) else {
            throw AssemblyError.missingImage(path: vmdk, stage: Self.type)
        }
        let info = try await context.output(["qemu-img", "info", "--output=json", vmdk])
        guard let json = try JSONSerialization.jsonObject(with: Data(info.utf8)) as? [String: Any],
            let capacity = (json["virtual-size"] as? NSNumber)?.int64Value,
            (json["format"] as? String) == "vmdk"
        else {
            throw StageError.invalidOptions(reason: "\(Self.type): \(name) is not a VMDK according to qemu-img info")
        }
        let size = ((try FileManager.default.attributesOfItem(atPath: vmdk)[.size]) as? NSNumber)?.int64Value ?? 0
        let base = String(name.dropLast(5))
        let descriptor = Self.descriptor(
            vmdk: name, fileSize: size, capacity: capacity, systemName: base,
            osType: options.vmware?.os_type ?? "otherLinux64Guest")
        let ovf = try context.outputFile(base + ".ovf")
        try Data(descriptor.utf8).write(to: URL(fileURLWithPath: ovf))
        var manifest = ""
        for (file, path) in [(base + ".ovf", ovf), (name, vmdk)] {
            manifest += "SHA256(\(file))= \(try await context.sha256(file: path))\n"
        }
        try Data(manifest.utf8).write(to: URL(fileURLWithPath: try context.outputFile(base + ".mf")))
    }

    static func escaped(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// The descriptor: DSP0243 envelope, CIM resource types 3 (CPU), 4
    /// (memory), 6 (SCSI controller), 17 (disk), 10 (ethernet); CIM OS type
    /// 96 is Debian 64-bit, 101 Linux 64-bit.
    static func descriptor(vmdk: String, fileSize: Int64, capacity: Int64, systemName: String, osType: String) -> String {
        let name = escaped(systemName)
        func item(_ fields: [(String, String)]) -> String {
            "      <Item>\n" + fields.map { "        <rasd:\($0.0)>\(escaped($0.1))</rasd:\($0.0)>\n" }.joined() + "      </Item>\n"
        }
        return """
            <?xml version="1.0" encoding="UTF-8"?>
            <Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" \
            xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" \
            xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" \
            xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
              <References>
                <File ovf:href="\(escaped(vmdk))" ovf:id="file1" ovf:size="\(fileSize)"/>
              </References>
              <DiskSection>
                <Info>Virtual disk information</Info>
                <Disk ovf:capacity="\(capacity)" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk1" ovf:fileRef="file1" \
            ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
              </DiskSection>
              <NetworkSection>
                <Info>The logical networks</Info>
                <Network ovf:name="VM Network">
                  <Description>The VM Network network</Description>
                </Network>
              </NetworkSection>
              <VirtualSystem ovf:id="\(name)">
                <Info>A virtual machine</Info>
                <Name>\(name)</Name>
                <OperatingSystemSection ovf:id="\(osType.hasPrefix("debian") ? 96 : 101)" vmw:osType="\(escaped(osType))">
                  <Info>The guest operating system</Info>
                </OperatingSystemSection>
                <VirtualHardwareSection>
                  <Info>Virtual hardware requirements</Info>
                  <System>
                    <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
                    <vssd:InstanceID>0</vssd:InstanceID>
                    <vssd:VirtualSystemIdentifier>\(name)</vssd:VirtualSystemIdentifier>
                    <vssd:VirtualSystemType>vmx-13</vssd:VirtualSystemType>
                  </System>

            """
                + item([
                    ("AllocationUnits", "hertz * 10^6"), ("Description", "Number of virtual CPUs"),
                    ("ElementName", "2 virtual CPUs"), ("InstanceID", "1"), ("ResourceType", "3"), ("VirtualQuantity", "2"),
                ])
                + item([
                    ("AllocationUnits", "byte * 2^20"), ("Description", "Memory size"), ("ElementName", "2048 MB of memory"),
                    ("InstanceID", "2"), ("ResourceType", "4"), ("VirtualQuantity", "2048"),
                ])
                + item([
                    ("Address", "0"), ("Description", "SCSI controller"), ("ElementName", "SCSI controller 0"),
                    ("InstanceID", "3"), ("ResourceSubType", "lsilogic"), ("ResourceType", "6"),
                ])
                + item([
                    ("AddressOnParent", "0"), ("ElementName", "Hard disk 1"), ("HostResource", "ovf:/disk/vmdisk1"),
                    ("InstanceID", "4"), ("Parent", "3"), ("ResourceType", "17"),
                ])
                + item([
                    ("AutomaticAllocation", "true"), ("Connection", "VM Network"), ("ElementName", "Ethernet adapter 1"),
                    ("InstanceID", "5"), ("ResourceSubType", "E1000"), ("ResourceType", "10"),
                ])
                    + """
                        </VirtualHardwareSection>
                      </VirtualSystem>
                    </Envelope>

                    """
    }
}
